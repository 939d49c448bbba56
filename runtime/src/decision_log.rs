//! The decision log: one JSON line per decision (and per rejected request), written by a
//! thread of its own behind a bounded queue so deciding never waits on a disk. When the
//! queue is full the configured policy applies — wait, or deny the request (fail closed) —
//! and nothing is ever dropped silently. Closing flushes every queued line.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

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
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            sink: LogSink::Stdout,
            capacity: 10_000,
            when_full: WhenFull::Block,
            rotate_bytes: None,
            mask: Vec::new(),
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

pub struct DecisionLog {
    /// Taken out by `close`; a read lock per line is uncontended in practice.
    sender: RwLock<Option<SyncSender<Vec<u8>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    when_full: WhenFull,
    mask: Vec<Vec<String>>,
    counters: Arc<LogCounters>,
}

impl DecisionLog {
    pub fn start(config: LogConfig) -> std::io::Result<DecisionLog> {
        let (log, receiver, output) = DecisionLog::queue(&config)?;
        log.spawn_writer(receiver, output)?;
        Ok(log)
    }

    /// The log without its writer yet: what `start` builds before spawning the thread.
    fn queue(config: &LogConfig) -> std::io::Result<(DecisionLog, Receiver<Vec<u8>>, Output)> {
        let output = Output::open(&config.sink, config.rotate_bytes)?;
        let (sender, receiver) = sync_channel(config.capacity.max(1));
        let log = DecisionLog {
            sender: RwLock::new(Some(sender)),
            writer: Mutex::new(None),
            when_full: config.when_full,
            mask: config
                .mask
                .iter()
                .map(|field| field.split('.').map(str::to_owned).collect())
                .collect(),
            counters: Arc::new(LogCounters::default()),
        };
        Ok((log, receiver, output))
    }

    fn spawn_writer(&self, receiver: Receiver<Vec<u8>>, output: Output) -> std::io::Result<()> {
        let counters = self.counters.clone();
        let writer = std::thread::Builder::new()
            .name(String::from("flowgate-decision-log"))
            .spawn(move || write_lines(receiver, output, &counters))?;
        if let Ok(mut slot) = self.writer.lock() {
            *slot = Some(writer);
        }
        Ok(())
    }

    pub fn counters(&self) -> &LogCounters {
        &self.counters
    }

    /// Queues one entry. Under `WhenFull::Block` this waits for room; under `Deny` a full
    /// queue is an error and the caller must deny.
    pub fn record(&self, entry: &impl serde::Serialize) -> Result<(), LogFull> {
        // Without masks the entry is written straight to text, with no tree in between.
        let line = if self.mask.is_empty() {
            // Sized for a typical line up front: growing the buffer costs more than the
            // serialization itself.
            let mut bytes = Vec::with_capacity(512);
            serde_json::to_writer(&mut bytes, entry).map_err(|_| LogFull)?;
            bytes
        } else {
            let mut value = serde_json::to_value(entry).map_err(|_| LogFull)?;
            for path in &self.mask {
                mask(&mut value, path);
            }
            value.to_string().into_bytes()
        };
        let Ok(guard) = self.sender.read() else {
            return Err(LogFull);
        };
        let Some(sender) = guard.as_ref() else {
            return Err(LogFull);
        };
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        match sender.try_send(line) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(line)) => match self.when_full {
                WhenFull::Block => {
                    self.counters.waited.fetch_add(1, Ordering::Relaxed);
                    sender.send(line).map_err(|_| self.undo())
                }
                WhenFull::Deny => {
                    self.counters.denied_full.fetch_add(1, Ordering::Relaxed);
                    Err(self.undo())
                }
            },
            Err(TrySendError::Disconnected(_)) => Err(self.undo()),
        }
    }

    fn undo(&self) -> LogFull {
        self.counters.queued.fetch_sub(1, Ordering::Relaxed);
        LogFull
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

fn mask(value: &mut serde_json::Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(child) = value.get_mut(first.as_str()) else {
        return;
    };
    if rest.is_empty() {
        *child = serde_json::Value::String(String::from("***"));
    } else {
        mask(child, rest);
    }
}

enum Output {
    Stdout(std::io::Stdout),
    File {
        path: PathBuf,
        file: BufWriter<File>,
        size: u64,
        rotate_bytes: Option<u64>,
    },
}

const KEPT_ROTATIONS: u32 = 5;

impl Output {
    fn open(sink: &LogSink, rotate_bytes: Option<u64>) -> std::io::Result<Output> {
        match sink {
            LogSink::Stdout => Ok(Output::Stdout(std::io::stdout())),
            LogSink::File(path) => {
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                let size = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
                Ok(Output::File {
                    path: path.clone(),
                    file: BufWriter::new(file),
                    size,
                    rotate_bytes,
                })
            }
        }
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Stdout(stdout) => {
                let mut stdout = stdout.lock();
                stdout.write_all(line)?;
                stdout.write_all(b"\n")
            }
            Output::File {
                path,
                file,
                size,
                rotate_bytes,
            } => {
                if rotate_bytes
                    .is_some_and(|limit| *size > 0 && *size + line.len() as u64 + 1 > limit)
                {
                    file.flush()?;
                    for index in (1..KEPT_ROTATIONS).rev() {
                        let _ = std::fs::rename(rotated(path, index), rotated(path, index + 1));
                    }
                    std::fs::rename(&*path, rotated(path, 1))?;
                    *file =
                        BufWriter::new(OpenOptions::new().create(true).append(true).open(&*path)?);
                    *size = 0;
                }
                file.write_all(line)?;
                file.write_all(b"\n")?;
                *size += line.len() as u64 + 1;
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

fn rotated(path: &std::path::Path, index: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

/// Drains the queue in rounds: write what is queued, flush once, then wait briefly before
/// looking again. Waiting by sleeping, not on the channel, spares every decision a wake-up
/// call to this thread under load; after a quiet spell it blocks on the channel instead,
/// so an idle sidecar does not spin.
fn write_lines(receiver: Receiver<Vec<u8>>, mut output: Output, counters: &LogCounters) {
    let mut quiet_rounds = 0_u32;
    loop {
        let first = if quiet_rounds < QUIET_ROUNDS_BEFORE_BLOCKING {
            match receiver.try_recv() {
                Ok(line) => line,
                Err(std::sync::mpsc::TryRecvError::Empty) => {
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
        let mut pending = Some(first);
        while let Some(line) = pending.take().or_else(|| receiver.try_recv().ok()) {
            if output.write_line(&line).is_err() {
                counters.write_errors.fetch_add(1, Ordering::Relaxed);
            }
            counters.written.fetch_add(1, Ordering::Relaxed);
        }
        if output.flush().is_err() {
            counters.write_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    let _ = output.flush();
}

/// How long the writer waits between rounds while lines keep coming: the most a line
/// waits in memory before it is written.
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
