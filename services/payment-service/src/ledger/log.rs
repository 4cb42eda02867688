//! The append-only ledger log: one JSON entry (a charge, or a void) per
//! line, a batch of lines written with a single `write` and synced before
//! any of its entries is acknowledged.
//!
//! Space is written ahead: while the log is open, its lines are followed by
//! zeros, and a batch overwrites them. Appending past the end changes the
//! file's size, so every sync would also write the inode (ext4 without a
//! journal) or commit the journal (with one): two writes to wait for
//! instead of one. Overwriting space already written syncs the data alone,
//! which halves both the wait and the CPU a sync costs (PostgreSQL's WAL
//! segments are written ahead for the same reason). A clean close cuts the
//! zeros off, so a stopped log is plain JSON lines; after a crash the next
//! start does.
//!
//! A crash can only tear what was never acknowledged: the lines after the
//! last sync, which may reach the disk in part, in any order, with zeros
//! between them. The log ends at its first zero byte; what follows its last
//! whole line is cut off on start, and its non-zero bytes are reported.
//!
//! One process per log: the file is locked exclusively (`flock`) for as long
//! as it is open, and a second process refuses to start. Two writers would
//! each believe a key uncharged and both charge it (a rolling restart that
//! overlaps). The kernel drops the lock when the process dies, even by
//! SIGKILL, so a restart after a crash is never blocked.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::Entry;

/// Zeros written ahead of the lines at a time: a few thousand charges, and
/// one extension's write stays a few milliseconds.
const WRITE_AHEAD: u64 = 1 << 20;

pub struct LedgerLog {
    file: File,
    /// Bytes known to be whole lines: the next batch is written here, and a
    /// failed one is cut back to here, so a later batch never glues onto
    /// half a line.
    len: u64,
    /// The file's size: `len` plus the zeros written ahead.
    size: u64,
    /// A failed write could not be undone: nothing more is written.
    broken: bool,
}

pub struct Replay {
    pub entries: Vec<Entry>,
    pub torn_tail_bytes: usize,
}

/// One ledger has one process: a second one could charge the same key.
fn lock(file: &File, path: &Path) -> io::Result<()> {
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => io::Error::new(
            io::ErrorKind::ResourceBusy,
            format!(
                "{} is locked by another payment-service process; one ledger has one \
                 process, or both could charge the same key: stop the other one first",
                path.display()
            ),
        ),
        std::fs::TryLockError::Error(e) => e,
    })
}

/// The entries of the log's whole lines; a corrupt one stops the start.
fn parse(lines: &[u8], path: &Path) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for (index, line) in lines.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let entry = Entry::parse(line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: line {} is corrupt ({e}); refusing to start rather than forget a charge",
                    path.display(),
                    index + 1
                ),
            )
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

impl LedgerLog {
    pub fn open(path: &Path) -> io::Result<(Self, Replay)> {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = parent {
            std::fs::create_dir_all(dir)?;
        }
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        lock(&file, path)?;
        if !existed {
            // Make the new file's directory entry durable too.
            File::open(parent.unwrap_or(Path::new(".")))?.sync_all()?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;

        // The lines end at the first zero byte (none is in a line: JSON
        // escapes control characters), and at their last newline.
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let whole = bytes[..end]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let torn_tail_bytes = bytes[whole..].iter().filter(|&&b| b != 0).count();
        if torn_tail_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                torn_tail_bytes,
                "ledger log ends in a torn line (crash during an append); dropping it"
            );
        }
        if whole < bytes.len() {
            file.set_len(whole as u64)?;
            file.sync_all()?;
        }

        let entries = parse(&bytes[..whole], path)?;
        tracing::info!(path = %path.display(), entries = entries.len(), "ledger log replayed");
        let log = Self {
            file,
            len: whole as u64,
            size: whole as u64,
            broken: false,
        };
        Ok((
            log,
            Replay {
                entries,
                torn_tail_bytes,
            },
        ))
    }

    /// The log line of `entry`, newline included.
    pub fn line(entry: &Entry) -> io::Result<Vec<u8>> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        Ok(line)
    }

    /// Writes `batch`'s lines ([`Self::line`]) after the last with one write
    /// and syncs once: none is acknowledged before the sync that covers
    /// them all. When they reach past the zeros written ahead, more are
    /// written in the same sync; on a disk too full for them, the lines
    /// alone are.
    pub fn append(&mut self, batch: &[&[u8]]) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(
                "an earlier failed write to the ledger log could not be undone; \
                 restart payment-service",
            ));
        }
        let mut bytes = batch.concat();
        let lines = bytes.len();
        let end = self.len + lines as u64;
        if end > self.size {
            bytes.resize(lines + WRITE_AHEAD as usize, 0);
            if self.write_synced(&bytes).is_ok() {
                self.len = end;
                return Ok(());
            }
            bytes.truncate(lines);
        }
        self.write_synced(&bytes)?;
        self.len = end;
        Ok(())
    }

    /// Writes `bytes` after the lines and syncs; a failed write is undone.
    fn write_synced(&mut self, bytes: &[u8]) -> io::Result<()> {
        let written = self
            .file
            .write_all_at(bytes, self.len)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.size = self.size.max(self.len + bytes.len() as u64);
                Ok(())
            }
            Err(e) => {
                self.undo(bytes.len());
                Err(e)
            }
        }
    }

    /// After a failed write of `written` bytes: none of its lines may come
    /// back, at a restart or after a shorter batch written over it, since
    /// its charges were refused. They are cut off; if that fails too, they
    /// are overwritten with zeros; if even that fails, nothing more is
    /// written until a restart.
    fn undo(&mut self, written: usize) {
        if self.file.set_len(self.len).is_ok() {
            self.size = self.len;
            return;
        }
        let zeros = vec![0; written];
        if self.file.write_all_at(&zeros, self.len).is_ok() {
            self.size = self.size.max(self.len + written as u64);
            return;
        }
        tracing::error!(
            "a failed write to the ledger log could not be undone; refusing every charge \
             until payment-service restarts"
        );
        self.broken = true;
    }
}

impl Drop for LedgerLog {
    /// A clean close cuts the zeros written ahead off: a stopped log is
    /// its lines alone.
    fn drop(&mut self) {
        if self.size > self.len {
            let cut = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_all());
            if let Err(e) = cut {
                tracing::warn!(error = %e, "could not cut the ledger log's zeros off; the next start will");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Charge;
    use crate::ledger::tests::{key, request};

    fn line(n: usize) -> Vec<u8> {
        let charge = Charge::new(key(&format!("k{n}")), &request("1.00"));
        LedgerLog::line(&Entry::Charge(charge)).unwrap()
    }

    fn open(path: &Path) -> (LedgerLog, Replay) {
        LedgerLog::open(path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Space is written ahead in the same sync as the batch that needs it,
    /// past any number of extensions; a clean close leaves the lines alone.
    #[test]
    fn batches_overwrite_zeros_written_ahead_and_a_close_cuts_them_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let (mut log, _) = open(&path);
        let mut expected = Vec::new();
        for batch in 0..100 {
            let lines: Vec<Vec<u8>> = (0..100).map(|i| line(batch * 100 + i)).collect();
            let borrowed: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            log.append(&borrowed).unwrap();
            expected.extend(lines.concat());
            let on_disk = std::fs::read(&path).unwrap();
            assert_eq!(on_disk.len() as u64, log.size);
            assert!(log.size > log.len, "zeros follow the lines while open");
            assert_eq!(&on_disk[..expected.len()], expected.as_slice());
            assert!(on_disk[expected.len()..].iter().all(|&b| b == 0));
        }
        assert!(
            expected.len() as u64 > 2 * WRITE_AHEAD,
            "several extensions"
        );
        drop(log);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            expected,
            "plain lines once closed"
        );
    }

    /// What a crash leaves: the synced lines, zeros written ahead, and,
    /// after the last sync, part of a line and a later page of lines that
    /// reached the disk without the page before it. Only the lines before
    /// the first zero are the log's; the rest is cut off and its non-zero
    /// bytes reported.
    #[test]
    fn a_crash_tail_of_zeros_and_unsynced_pages_is_cut_at_the_first_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let synced = [line(1), line(2)].concat();
        let torn = &line(3)[..50];
        let stray = line(4);
        let mut bytes = synced.clone();
        bytes.extend_from_slice(torn);
        bytes.resize(8192, 0);
        bytes.extend_from_slice(&stray);
        bytes.resize(16384, 0);
        std::fs::write(&path, &bytes).unwrap();

        let (log, replay) = open(&path);
        assert_eq!(replay.torn_tail_bytes, torn.len() + stray.len());
        assert_eq!(
            (log.len, log.size),
            (synced.len() as u64, synced.len() as u64)
        );
        drop(log);
        assert_eq!(std::fs::read(&path).unwrap(), synced);

        // A tail of zeros alone (a SIGKILL between syncs) is no torn line.
        let mut bytes = synced.clone();
        bytes.resize(4096, 0);
        std::fs::write(&path, &bytes).unwrap();
        let (_, replay) = open(&path);
        assert_eq!(replay.torn_tail_bytes, 0);
        assert_eq!(std::fs::read(&path).unwrap(), synced);
    }
}
