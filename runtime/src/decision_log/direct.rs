//! A log file written around the page cache (`O_DIRECT`), on Linux filesystems that allow
//! it. Under load the decision log writes hundreds of megabytes a second that nobody
//! reads back soon; through the page cache every new 4 KiB page is allocated, filled and
//! later written back, and on virtual machines that return free memory to the host
//! (free-page reporting) each fresh page also costs a fault on the host. Measured on the
//! 2-core VM in benches/README.md: 165 MB/s through the cache against 1.2 GB/s direct.
//!
//! Direct writes must cover whole blocks at block-aligned offsets, and a log ends
//! mid-block. So whole blocks go out direct, and the partial last block goes through an
//! ordinary descriptor on every flush; the next direct write starts at that block again
//! and rewrites it with more lines. The file always holds exactly the lines written,
//! never padding.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Alignment of direct writes: the largest logical block size in common use.
const BLOCK: usize = 4096;
/// Bytes gathered before a direct write.
const CHUNK: usize = 1 << 20;

pub(super) struct DirectFile {
    direct: File,
    buffered: File,
    /// `CHUNK + BLOCK` bytes, never reallocated; the aligned window is `region`.
    memory: Vec<u8>,
    /// Where the aligned window starts in `memory`.
    start: usize,
    /// Bytes of the window holding data not yet written direct.
    pending: usize,
    /// The file offset of the window's first byte; always a multiple of `BLOCK`.
    offset: u64,
}

impl DirectFile {
    /// Opens `path` for appending, or `None` where the filesystem refuses `O_DIRECT`
    /// (tmpfs, some network filesystems): the caller then writes through the cache.
    pub(super) fn open(path: &Path) -> io::Result<Option<DirectFile>> {
        let buffered = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        let direct = match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(direct) => direct,
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
            Err(error) => return Err(error),
        };
        // An existing log ends mid-block: that block is rewritten with the next lines,
        // so its start comes back into the window.
        let size = buffered.metadata()?.len();
        let offset = size - size % BLOCK as u64;
        let mut tail = vec![0; (size - offset) as usize];
        buffered.read_exact_at(&mut tail, offset)?;
        let memory = vec![0; CHUNK + BLOCK];
        let start = (BLOCK - memory.as_ptr().addr() % BLOCK) % BLOCK;
        let mut file = DirectFile {
            direct,
            buffered,
            memory,
            start,
            pending: tail.len(),
            offset,
        };
        file.window(0, tail.len()).copy_from_slice(&tail);
        Ok(Some(file))
    }

    /// The open file, for its identity on disk.
    pub(super) fn file(&self) -> &File {
        &self.buffered
    }

    /// The file's length once every line given is written.
    pub(super) fn size(&self) -> u64 {
        self.offset + self.pending as u64
    }

    /// The window's bytes `from..to`.
    fn window(&mut self, from: usize, to: usize) -> &mut [u8] {
        let start = self.start;
        self.memory
            .get_mut(start + from..start + to)
            .unwrap_or_default()
    }

    pub(super) fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let room = CHUNK - self.pending;
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            let pending = self.pending;
            self.window(pending, pending + now.len())
                .copy_from_slice(now);
            self.pending += now.len();
            bytes = later;
            if self.pending == CHUNK {
                self.write_whole_blocks()?;
            }
        }
        Ok(())
    }

    /// Writes every whole block of the window direct and keeps the partial one.
    fn write_whole_blocks(&mut self) -> io::Result<()> {
        let whole = self.pending - self.pending % BLOCK;
        if whole == 0 {
            return Ok(());
        }
        let blocks = self.window_ref(0, whole);
        // A direct write can be refused for reasons of the moment (a filesystem that
        // changed its mind about alignment); the same bytes then go through the cache,
        // so no line is lost.
        if self.direct.write_all_at(blocks, self.offset).is_err() {
            self.buffered.write_all_at(blocks, self.offset)?;
        }
        let (start, pending) = (self.start, self.pending);
        self.memory
            .copy_within(start + whole..start + pending, start);
        self.pending -= whole;
        self.offset += whole as u64;
        Ok(())
    }

    fn window_ref(&self, from: usize, to: usize) -> &[u8] {
        self.memory
            .get(self.start + from..self.start + to)
            .unwrap_or_default()
    }

    /// Puts every line in the file: whole blocks direct, the partial one through the cache.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.write_whole_blocks()?;
        if self.pending > 0 {
            self.buffered
                .write_all_at(self.window_ref(0, self.pending), self.offset)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "tests fail loudly by design"
    )]

    use super::*;

    /// A path on the checkout's own disk: the system temporary directory may be tmpfs,
    /// which refuses `O_DIRECT` and would leave the direct path untested.
    fn path(name: &str) -> std::path::PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/direct-io-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    /// Lines of every length, around and across block and chunk boundaries.
    fn lines(seed: u64, count: usize) -> Vec<Vec<u8>> {
        let mut state = seed;
        (0..count)
            .map(|index| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let length = match index % 50 {
                    0 => BLOCK - 1,
                    1 => CHUNK + 17,
                    _ => (state >> 33) as usize % 900,
                };
                let mut line: Vec<u8> = (0..length)
                    .map(|at| b'a' + ((at as u64 + state) % 26) as u8)
                    .collect();
                line.push(b'\n');
                line
            })
            .collect()
    }

    #[test]
    fn the_file_holds_exactly_the_lines_written_flushed_or_not() {
        let path = path("exact");
        let mut file = DirectFile::open(&path)
            .unwrap()
            .expect("ext4 takes O_DIRECT");
        let mut expected = Vec::new();
        for (index, line) in lines(7, 600).iter().enumerate() {
            file.write_all(line).unwrap();
            expected.extend_from_slice(line);
            if index % 37 == 0 {
                file.flush().unwrap();
                assert_eq!(
                    std::fs::read(&path).unwrap(),
                    expected,
                    "after line {index}"
                );
            }
        }
        file.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        std::fs::remove_file(&path).unwrap();
    }

    /// A log opened again (a restart) continues after its last line, mid-block.
    #[test]
    fn reopening_appends_after_the_last_line() {
        let path = path("reopen");
        let mut expected = Vec::new();
        for round in 0..3 {
            let mut file = DirectFile::open(&path)
                .unwrap()
                .expect("ext4 takes O_DIRECT");
            for line in lines(round, 120) {
                file.write_all(&line).unwrap();
                expected.extend_from_slice(&line);
            }
            file.flush().unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        std::fs::remove_file(&path).unwrap();
    }
}
