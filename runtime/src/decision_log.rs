//! The decision log: one JSON line per decision (and per rejected request), written by a
//! thread of its own behind a bounded queue so deciding never waits on a disk. When the
//! queue is full the configured policy applies — wait, or deny the request (fail closed) —
//! and nothing is ever dropped silently. Closing flushes every queued line. A log file
//! moved or deleted from outside (logrotate) is followed: the writer opens the path again.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

#[cfg(target_os = "linux")]
mod direct;
mod mask;

/// Where lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogSink {
    Stdout,
    File(PathBuf),
}

/// What to do when the queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait for room: decisions slow down, none go unrecorded.
    #[default]
    Block,
    /// Deny the request: it was not recorded, so it must not be allowed.
    Deny,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub sink: LogSink,
    pub capacity: usize,
    pub when_full: WhenFull,
    /// Rotate the file when it grows past this many bytes (keeping `.1` … `.5`).
    pub rotate_bytes: Option<u64>,
    /// Top-level or dotted fields (`principal.id`) replaced by `"***"`.
    pub mask: Vec<String>,
    /// Write the file around the page cache (`O_DIRECT`, Linux) where the filesystem
    /// allows it; see [`direct`].
    pub direct_io: bool,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            sink: LogSink::Stdout,
            capacity: 10_000,
            when_full: WhenFull::Block,
            rotate_bytes: None,
            mask: Vec::new(),
            direct_io: false,
        }
    }
}

/// Counters the metrics export.
#[derive(Debug, Default)]
pub struct LogCounters {
    pub written: AtomicU64,
    pub queued: AtomicU64,
    /// Times a decision waited for room.
    pub waited: AtomicU64,
    /// Requests denied because the log was full.
    pub denied_full: AtomicU64,
    pub write_errors: AtomicU64,
}

impl LogCounters {
    pub fn depth(&self) -> u64 {
        self.queued
            .load(Ordering::Relaxed)
            .saturating_sub(self.written.load(Ordering::Relaxed))
    }
}

/// The request could not be logged under `WhenFull::Deny`.
#[derive(Debug, thiserror::Error)]
#[error("the decision log is full")]
pub struct LogFull;

/// One message on the queue: one line, or a batch's lines, each ending in a newline.
struct Lines {
    bytes: Vec<u8>,
    count: u64,
}

pub struct DecisionLog {
    /// Taken out by `close`; a read lock per message is uncontended in practice.
    sender: RwLock<Option<Sender<Lines>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    when_full: WhenFull,
    mask: Vec<Vec<String>>,
    shared: Arc<Shared>,
}

/// What the log and its writer thread share. The queue is bounded in lines, not
/// messages, so a batch's message weighs what its lines do.
struct Shared {
    counters: LogCounters,
    capacity: u64,
    /// Signalled by the writer after each round, for callers waiting for room.
    room: Mutex<()>,
    freed: Condvar,
    /// Set by [`DecisionLog::reopen`]: open the file's path again before the next write.
    reopen: AtomicBool,
}

/// The longest a waiting caller sleeps before looking at the queue again, should it
/// miss the writer's signal.
const ROOM_CHECK: std::time::Duration = std::time::Duration::from_millis(1);

impl DecisionLog {
    pub fn start(config: LogConfig) -> std::io::Result<DecisionLog> {
        let (log, receiver, output) = DecisionLog::queue(&config)?;
        log.spawn_writer(receiver, output)?;
        Ok(log)
    }

    /// The log without its writer yet: what `start` builds before spawning the thread.
    fn queue(config: &LogConfig) -> std::io::Result<(DecisionLog, Receiver<Lines>, Output)> {
        let output = Output::open(&config.sink, config.rotate_bytes, config.direct_io)?;
        let (sender, receiver) = channel();
        let log = DecisionLog {
            sender: RwLock::new(Some(sender)),
            writer: Mutex::new(None),
            when_full: config.when_full,
            mask: config
                .mask
                .iter()
                .map(|field| field.split('.').map(str::to_owned).collect())
                .collect(),
            shared: Arc::new(Shared {
                counters: LogCounters::default(),
                capacity: config.capacity.max(1) as u64,
                room: Mutex::new(()),
                freed: Condvar::new(),
                reopen: AtomicBool::new(false),
            }),
        };
        Ok((log, receiver, output))
    }

    fn spawn_writer(&self, receiver: Receiver<Lines>, output: Output) -> std::io::Result<()> {
        let shared = self.shared.clone();
        let writer = std::thread::Builder::new()
            .name(String::from("flowgate-decision-log"))
            .spawn(move || drain(receiver, output, &shared))?;
        if let Ok(mut slot) = self.writer.lock() {
            *slot = Some(writer);
        }
        Ok(())
    }

    pub fn counters(&self) -> &LogCounters {
        &self.shared.counters
    }

    /// Asks the writer to open the file's path again before it writes the next lines: what
    /// logrotate's `postrotate` should trigger (the sidecar does it on SIGHUP), so no line
    /// lands in a rotated file that is about to be compressed. Without it the writer notices
    /// a moved or deleted file within [`PATH_CHECK`].
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Relaxed);
    }

    /// Queues one entry. Under `WhenFull::Block` this waits for room; under `Deny` a full
    /// queue is an error and the caller must deny.
    pub fn record(&self, entry: &impl serde::Serialize) -> Result<(), LogFull> {
        self.record_all(std::iter::once(entry))
    }

    /// Queues several entries as one message, all or none: a batch's decisions are
    /// written together, and under `Deny` a full queue refuses the whole batch.
    pub fn record_all<T: serde::Serialize>(
        &self,
        entries: impl IntoIterator<Item = T>,
    ) -> Result<(), LogFull> {
        let entries = entries.into_iter();
        // Sized for typical lines up front: growing the buffer costs more than the
        // serialization itself.
        let mut bytes = Vec::with_capacity(512 * entries.size_hint().0.max(1));
        let mut count = 0;
        for entry in entries {
            self.serialize_line(&entry, &mut bytes)?;
            count += 1;
        }
        self.enqueue(bytes, count)
    }

    /// Queues lines the caller wrote itself — `count` JSON objects, each ending in a
    /// newline — as one message, all or none, like [`DecisionLog::record_all`]. The
    /// sidecar writes its decision lines this way, without a serializer in between.
    #[cfg_attr(
        not(feature = "server"),
        allow(dead_code, reason = "only the server writes its own lines")
    )]
    pub(crate) fn record_lines(&self, bytes: Vec<u8>, count: u64) -> Result<(), LogFull> {
        if self.mask.is_empty() {
            return self.enqueue(bytes, count);
        }
        let mut masked = Vec::with_capacity(bytes.len());
        for line in bytes
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.is_empty())
        {
            self.mask_line(line, &mut masked)?;
        }
        self.enqueue(masked, count)
    }

    fn enqueue(&self, bytes: Vec<u8>, count: u64) -> Result<(), LogFull> {
        if count == 0 {
            return Ok(());
        }
        let Ok(guard) = self.sender.read() else {
            return Err(LogFull);
        };
        let Some(sender) = guard.as_ref() else {
            return Err(LogFull);
        };
        self.admit(count)?;
        sender.send(Lines { bytes, count }).map_err(|_| {
            self.shared
                .counters
                .queued
                .fetch_sub(count, Ordering::Relaxed);
            LogFull
        })
    }

    /// Counts `count` lines into the queue when there is room; a full queue waits or
    /// refuses, as configured. A message larger than the whole queue goes into an empty
    /// one, so no batch waits forever.
    fn admit(&self, count: u64) -> Result<(), LogFull> {
        let Shared {
            counters,
            capacity,
            room,
            freed,
            ..
        } = &*self.shared;
        let mut waited = false;
        loop {
            let queued = counters.queued.load(Ordering::Acquire);
            let depth = queued.saturating_sub(counters.written.load(Ordering::Acquire));
            if depth == 0 || depth + count <= *capacity {
                if counters
                    .queued
                    .compare_exchange(queued, queued + count, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            match self.when_full {
                WhenFull::Deny => {
                    counters.denied_full.fetch_add(count, Ordering::Relaxed);
                    return Err(LogFull);
                }
                WhenFull::Block => {
                    if !waited {
                        counters.waited.fetch_add(count, Ordering::Relaxed);
                        waited = true;
                    }
                    let Ok(guard) = room.lock() else {
                        return Err(LogFull);
                    };
                    let _ = freed.wait_timeout(guard, ROOM_CHECK);
                }
            }
        }
    }

    /// Appends one entry and its newline; without masks straight to text, with no tree
    /// in between.
    fn serialize_line(
        &self,
        entry: &impl serde::Serialize,
        bytes: &mut Vec<u8>,
    ) -> Result<(), LogFull> {
        if self.mask.is_empty() {
            serde_json::to_writer(&mut *bytes, entry).map_err(|_| LogFull)?;
            bytes.push(b'\n');
            Ok(())
        } else {
            let line = serde_json::to_vec(entry).map_err(|_| LogFull)?;
            self.mask_line(&line, bytes)
        }
    }

    /// Appends one line (a JSON object, without its newline) masked, and a newline.
    fn mask_line(&self, line: &[u8], bytes: &mut Vec<u8>) -> Result<(), LogFull> {
        let text = std::str::from_utf8(line).map_err(|_| LogFull)?;
        let paths: Vec<&[String]> = self.mask.iter().map(Vec::as_slice).collect();
        mask::masked(text, &paths, bytes).ok_or(LogFull)?;
        bytes.push(b'\n');
        Ok(())
    }

    /// Stops accepting lines and waits until every queued one is written and flushed.
    pub fn close(&self) {
        if let Ok(mut sender) = self.sender.write() {
            *sender = None;
        }
        let writer = self.writer.lock().ok().and_then(|mut writer| writer.take());
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

impl Drop for DecisionLog {
    fn drop(&mut self) {
        self.close();
    }
}

enum Output {
    Stdout(std::io::Stdout),
    File {
        path: PathBuf,
        file: LogFile,
        size: u64,
        rotate_bytes: Option<u64>,
        direct_io: bool,
        /// The open file's identity on disk, to see the path now names another file.
        identity: Option<FileIdentity>,
        /// When the path was last compared with the open file.
        checked: Instant,
    },
}

/// How often the writer checks that its path still names the file it writes: a file moved
/// away (logrotate) or deleted is replaced by a new one at the path within this time.
pub const PATH_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Device and inode: what a path names, whatever the file is called now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileIdentity(u64, u64);

impl FileIdentity {
    #[cfg(unix)]
    fn of(metadata: &std::fs::Metadata) -> Option<FileIdentity> {
        use std::os::unix::fs::MetadataExt as _;
        Some(FileIdentity(metadata.dev(), metadata.ino()))
    }

    #[cfg(not(unix))]
    fn of(_: &std::fs::Metadata) -> Option<FileIdentity> {
        None
    }
}

const KEPT_ROTATIONS: u32 = 5;
/// Under load a round brings thousands of lines; a large buffer writes them in a few
/// system calls.
const WRITE_BUFFER: usize = 256 * 1024;

impl Output {
    fn open(sink: &LogSink, rotate_bytes: Option<u64>, direct_io: bool) -> std::io::Result<Output> {
        match sink {
            LogSink::Stdout => Ok(Output::Stdout(std::io::stdout())),
            LogSink::File(path) => {
                let (file, size, identity) = LogFile::open(path, direct_io)?;
                Ok(Output::File {
                    path: path.clone(),
                    identity,
                    file,
                    size,
                    rotate_bytes,
                    direct_io,
                    checked: Instant::now(),
                })
            }
        }
    }

    /// Opens the path again if it no longer names the open file (moved away or deleted),
    /// or at once when `now` is set. Checks at most every [`PATH_CHECK`] otherwise.
    fn follow_path(&mut self, now: bool) -> std::io::Result<()> {
        let Output::File {
            path,
            file,
            size,
            direct_io,
            identity,
            checked,
            ..
        } = self
        else {
            return Ok(());
        };
        if !now {
            // Without an identity to compare (not unix) only `reopen` moves the writer.
            if identity.is_none() || checked.elapsed() < PATH_CHECK {
                return Ok(());
            }
            *checked = Instant::now();
            let named = std::fs::metadata(&*path)
                .ok()
                .and_then(|metadata| FileIdentity::of(&metadata));
            if named == *identity {
                return Ok(());
            }
        }
        // What was written so far belongs to the old file, wherever it is now.
        file.flush()?;
        (*file, *size, *identity) = LogFile::open(path, *direct_io)?;
        Ok(())
    }

    /// Writes whole lines (each with its newline); rotation happens between messages.
    fn write_lines(&mut self, lines: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Stdout(stdout) => stdout.lock().write_all(lines),
            Output::File {
                path,
                file,
                size,
                rotate_bytes,
                direct_io,
                identity,
                ..
            } => {
                if rotate_bytes.is_some_and(|limit| *size > 0 && *size + lines.len() as u64 > limit)
                {
                    file.flush()?;
                    for index in (1..KEPT_ROTATIONS).rev() {
                        let _ = std::fs::rename(rotated(path, index), rotated(path, index + 1));
                    }
                    std::fs::rename(&*path, rotated(path, 1))?;
                    (*file, *size, *identity) = LogFile::open(path, *direct_io)?;
                }
                file.write_all(lines)?;
                *size += lines.len() as u64;
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(stdout) => stdout.flush(),
            Output::File { file, .. } => file.flush(),
        }
    }
}

/// A log file: written direct where the filesystem allows it (see [`direct`]), else
/// through a large buffer and the page cache.
enum LogFile {
    #[cfg(target_os = "linux")]
    Direct(direct::DirectFile),
    Buffered(BufWriter<File>),
}

impl LogFile {
    /// Opens `path` for appending, direct when asked and allowed; also gives its
    /// current size and its identity on disk.
    fn open(
        path: &std::path::Path,
        direct_io: bool,
    ) -> std::io::Result<(LogFile, u64, Option<FileIdentity>)> {
        let (file, size) = LogFile::open_sized(path, direct_io)?;
        let identity = file.identity();
        Ok((file, size, identity))
    }

    fn open_sized(path: &std::path::Path, direct_io: bool) -> std::io::Result<(LogFile, u64)> {
        #[cfg(target_os = "linux")]
        if direct_io && let Some(file) = direct::DirectFile::open(path)? {
            let size = file.size();
            return Ok((LogFile::Direct(file), size));
        }
        LogFile::buffered(path)
    }

    fn buffered(path: &std::path::Path) -> std::io::Result<(LogFile, u64)> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok((
            LogFile::Buffered(BufWriter::with_capacity(WRITE_BUFFER, file)),
            size,
        ))
    }

    fn identity(&self) -> Option<FileIdentity> {
        let file = match self {
            #[cfg(target_os = "linux")]
            LogFile::Direct(file) => file.file(),
            LogFile::Buffered(file) => file.get_ref(),
        };
        file.metadata()
            .ok()
            .and_then(|metadata| FileIdentity::of(&metadata))
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            LogFile::Direct(file) => file.write_all(bytes),
            LogFile::Buffered(file) => file.write_all(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            LogFile::Direct(file) => file.flush(),
            LogFile::Buffered(file) => file.flush(),
        }
    }
}

fn rotated(path: &std::path::Path, index: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

/// Drains the queue in rounds: write what is queued, then wait briefly before looking
/// again. Waiting by sleeping, not on the channel, spares every decision a wake-up call
/// to this thread under load; after a quiet spell it blocks on the channel instead, so an
/// idle sidecar does not spin. Lines reach the file as whole blocks while traffic flows
/// and entirely at the first round without new lines (a millisecond after a pause), so
/// a busy log is not rewritten block by block every round.
fn drain(receiver: Receiver<Lines>, mut output: Output, shared: &Shared) {
    let counters = &shared.counters;
    let mut quiet_rounds = 0_u32;
    let mut unflushed = false;
    loop {
        let first = if quiet_rounds < QUIET_ROUNDS_BEFORE_BLOCKING {
            match receiver.try_recv() {
                Ok(line) => line,
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    if unflushed {
                        flush(&mut output, counters);
                        unflushed = false;
                    }
                    quiet_rounds += 1;
                    std::thread::sleep(ROUND);
                    continue;
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
            }
        } else {
            match receiver.recv() {
                Ok(line) => line,
                Err(_) => break,
            }
        };
        quiet_rounds = 0;
        let asked = shared.reopen.swap(false, Ordering::Relaxed);
        if output.follow_path(asked).is_err() {
            // Lines still go to the file open before; the next round tries again.
            counters.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut pending = Some(first);
        while let Some(lines) = pending.take().or_else(|| receiver.try_recv().ok()) {
            if output.write_lines(&lines.bytes).is_err() {
                counters
                    .write_errors
                    .fetch_add(lines.count, Ordering::Relaxed);
            }
            counters.written.fetch_add(lines.count, Ordering::Relaxed);
        }
        unflushed = true;
        shared.freed.notify_all();
    }
    flush(&mut output, counters);
}

fn flush(output: &mut Output, counters: &LogCounters) {
    if output.flush().is_err() {
        counters.write_errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// How long the writer waits between rounds while lines keep coming; after a pause in
/// traffic, about the most a line waits in memory before it is in the file.
const ROUND: std::time::Duration = std::time::Duration::from_millis(1);
/// Empty rounds (about 100 ms) before the writer blocks until the next line.
const QUIET_ROUNDS_BEFORE_BLOCKING: u32 = 100;

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "tests fail loudly by design"
    )]

    use super::*;
    use serde_json::json;

    fn temp(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("flowgate-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        for index in 1..=KEPT_ROTATIONS {
            let _ = std::fs::remove_file(rotated(&path, index));
        }
        path
    }

    fn config(path: &std::path::Path) -> LogConfig {
        LogConfig {
            sink: LogSink::File(path.to_path_buf()),
            ..LogConfig::default()
        }
    }

    #[test]
    fn writes_every_line_and_flushes_on_close_with_masking() {
        let path = temp("mask");
        let log = DecisionLog::start(LogConfig {
            mask: vec![String::from("principal.id")],
            ..config(&path)
        })
        .unwrap();
        for index in 0..1_000 {
            log.record(&json!({"n": index, "principal": {"id": "alice", "groups": ["g"]}}))
                .unwrap();
        }
        log.close();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1_000);
        assert!(
            text.lines()
                .all(|line| line.contains("\"id\":\"***\"") && line.contains("\"groups\":[\"g\"]"))
        );
        assert_eq!(log.counters().depth(), 0);
        assert!(
            log.record(&json!({})).is_err(),
            "a closed log accepts nothing"
        );
    }

    /// Both kinds of file append after what a file already holds, byte for byte.
    #[cfg(target_os = "linux")]
    #[test]
    fn direct_and_cached_files_append_alike() {
        let path = temp("kinds");
        std::fs::write(&path, "{\"earlier\":1}\n").unwrap();
        let mut expected = b"{\"earlier\":1}\n".to_vec();
        for direct_io in [true, false] {
            let (mut file, size, _) = LogFile::open(&path, direct_io).unwrap();
            assert_eq!(matches!(file, LogFile::Direct(_)), direct_io);
            assert_eq!(size, expected.len() as u64);
            for index in 0..2_000 {
                let line = format!(
                    "{{\"n\":{index},\"pad\":\"{}\"}}\n",
                    "x".repeat(index % 300)
                );
                file.write_all(line.as_bytes()).unwrap();
                expected.extend_from_slice(line.as_bytes());
            }
            file.flush().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), expected);
        }
        std::fs::remove_file(&path).unwrap();
    }

    /// A log on a fresh file, written direct or not.
    fn started(name: &str, direct_io: bool) -> (PathBuf, DecisionLog) {
        let path = temp(&format!("{name}-{direct_io}"));
        let log = DecisionLog::start(LogConfig {
            direct_io,
            ..config(&path)
        })
        .unwrap();
        (path, log)
    }

    /// Without a close, a line is in the file soon after traffic pauses, direct or not.
    #[test]
    fn lines_reach_the_file_when_traffic_pauses() {
        for direct_io in [false, true] {
            let (path, log) = started("pause", direct_io);
            log.record_lines(b"{\"n\":1}\n".to_vec(), 1).unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::fs::read(&path).unwrap_or_default() != b"{\"n\":1}\n" {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the line never reached the file (direct_io {direct_io})"
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            log.close();
        }
    }

    fn line_count(path: &std::path::Path) -> usize {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// Waits until `path` holds `lines` lines.
    fn wait_for_lines(path: &std::path::Path, lines: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while line_count(path) != lines {
            assert!(
                std::time::Instant::now() < deadline,
                "{} holds {} lines, not {lines}",
                path.display(),
                line_count(path)
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    fn record(log: &DecisionLog, count: usize) {
        for index in 0..count {
            log.record(&json!({"n": index})).unwrap();
        }
    }

    /// logrotate moves the file away and runs `postrotate` (SIGHUP, which calls `reopen`);
    /// every line after that goes to a new file at the path, none to the moved one.
    #[test]
    fn reopen_moves_writing_to_a_new_file_at_the_path() {
        for direct_io in [false, true] {
            let (path, log) = started("reopen", direct_io);
            record(&log, 10);
            wait_for_lines(&path, 10);
            std::fs::rename(&path, rotated(&path, 1)).unwrap();
            log.reopen();
            record(&log, 5);
            log.close();
            assert_eq!(line_count(&rotated(&path, 1)), 10, "direct_io {direct_io}");
            assert_eq!(line_count(&path), 5, "direct_io {direct_io}");
        }
    }

    /// Without being told, the writer notices within `PATH_CHECK` that its file was moved
    /// away or deleted, and writes a new one at the path.
    #[test]
    fn a_file_moved_away_or_deleted_is_replaced_at_the_path() {
        let path = temp("moved");
        let log = DecisionLog::start(config(&path)).unwrap();
        record(&log, 10);
        wait_for_lines(&path, 10);
        std::fs::rename(&path, rotated(&path, 1)).unwrap();
        std::thread::sleep(PATH_CHECK + std::time::Duration::from_millis(200));
        record(&log, 5);
        wait_for_lines(&path, 5);
        std::fs::remove_file(&path).unwrap();
        std::thread::sleep(PATH_CHECK + std::time::Duration::from_millis(200));
        record(&log, 3);
        log.close();
        assert_eq!(line_count(&rotated(&path, 1)), 10);
        assert_eq!(line_count(&path), 3);
        assert_eq!(log.counters().write_errors.load(Ordering::Relaxed), 0);
    }

    /// Lines the sidecar writes itself are masked like any entry.
    #[test]
    fn lines_written_by_the_caller_are_masked_too() {
        let path = temp("mask-lines");
        let log = DecisionLog::start(LogConfig {
            mask: vec![String::from("principal.id"), String::from("host")],
            ..config(&path)
        })
        .unwrap();
        let lines = b"{\"principal\":{\"id\":\"alice\"},\"host\":\"h1\",\"n\":1}\n\
                      {\"principal\":{\"id\":\"bob\"},\"host\":null,\"n\":2}\n";
        log.record_lines(lines.to_vec(), 2).unwrap();
        log.close();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"principal\":{\"id\":\"***\"},\"host\":\"***\",\"n\":1}\n\
             {\"principal\":{\"id\":\"***\"},\"host\":\"***\",\"n\":2}\n",
            "each key keeps its place"
        );
        assert_eq!(log.counters().written.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_full_queue_denies_under_the_deny_policy_and_loses_nothing() {
        let path = temp("full");
        let (log, receiver, output) = DecisionLog::queue(&LogConfig {
            capacity: 4,
            when_full: WhenFull::Deny,
            ..config(&path)
        })
        .unwrap();
        // No writer yet: the queue fills deterministically.
        let outcomes: Vec<bool> = (0..6)
            .map(|index| log.record(&json!({"n": index})).is_ok())
            .collect();
        assert_eq!(outcomes, [true, true, true, true, false, false]);
        assert_eq!(log.counters().denied_full.load(Ordering::Relaxed), 2);
        log.spawn_writer(receiver, output).unwrap();
        log.close();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4, "every accepted line was written");
    }

    #[test]
    fn a_batch_is_admitted_whole_or_refused_whole() {
        let path = temp("batch");
        let (log, receiver, output) = DecisionLog::queue(&LogConfig {
            capacity: 5,
            when_full: WhenFull::Deny,
            ..config(&path)
        })
        .unwrap();
        // Larger than the whole queue, but the queue is empty: admitted.
        assert!(
            log.record_all((0..8).map(|index| json!({"n": index})))
                .is_ok()
        );
        // The queue now holds more than its capacity: a batch of three is refused whole.
        assert!(
            log.record_all((0..3).map(|index| json!({"m": index})))
                .is_err()
        );
        assert_eq!(log.counters().denied_full.load(Ordering::Relaxed), 3);
        assert_eq!(log.counters().depth(), 8);
        log.spawn_writer(receiver, output).unwrap();
        log.close();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 8);
        assert!(text.lines().all(|line| line.starts_with("{\"n\":")));
    }

    #[test]
    fn a_full_queue_waits_for_room_under_the_block_policy() {
        let path = temp("block");
        let log = std::sync::Arc::new(
            DecisionLog::start(LogConfig {
                capacity: 3,
                when_full: WhenFull::Block,
                ..config(&path)
            })
            .unwrap(),
        );
        let writers: Vec<_> = (0..4)
            .map(|thread| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for index in 0..200 {
                        log.record_all([json!({"t": thread, "n": index}), json!({"t": thread})])
                            .unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        log.close();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().count(),
            1_600,
            "every line written, none dropped"
        );
        assert!(log.counters().waited.load(Ordering::Relaxed) > 0);
        assert_eq!(log.counters().depth(), 0);
    }

    #[test]
    fn rotates_by_size_keeping_older_files() {
        let path = temp("rotate");
        let log = DecisionLog::start(LogConfig {
            rotate_bytes: Some(1_000),
            ..config(&path)
        })
        .unwrap();
        for index in 0..300 {
            log.record(&json!({"n": index, "padding": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}))
                .unwrap();
        }
        log.close();
        let current = std::fs::metadata(&path).unwrap().len();
        assert!(current <= 1_000, "{current}");
        assert!(rotated(&path, 1).exists() && rotated(&path, KEPT_ROTATIONS).exists());
        let kept: usize = std::iter::once(path.clone())
            .chain((1..=KEPT_ROTATIONS).map(|index| rotated(&path, index)))
            .map(|file| {
                std::fs::read_to_string(file)
                    .unwrap_or_default()
                    .lines()
                    .count()
            })
            .sum();
        assert!(
            kept > 50 && kept < 300,
            "older rotations beyond five are removed: {kept}"
        );
    }
}
