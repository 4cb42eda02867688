//! The append-only ledger log: one JSON charge per line, a batch of lines
//! written with a single `write` and synced before any of its charges is
//! acknowledged.
//!
//! A crash can only tear the line being written, which is the last one and
//! was never acknowledged; on start that tail is cut off and reported.
//!
//! One process per log: the file is locked exclusively (`flock`) for as long
//! as it is open, and a second process refuses to start. Two writers would
//! each believe a key uncharged and both charge it (a rolling restart that
//! overlaps). The kernel drops the lock when the process dies, even by
//! SIGKILL, so a restart after a crash is never blocked.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use super::Charge;

pub struct LedgerLog {
    file: File,
    /// Bytes known to be whole lines: a failed append is cut back to here, so
    /// a later append never glues onto half a line.
    len: u64,
}

pub struct Replay {
    pub charges: Vec<Charge>,
    pub torn_tail_bytes: usize,
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
            .append(true)
            .create(true)
            .open(path)?;
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
        })?;
        if !existed {
            // Make the new file's directory entry durable too.
            File::open(parent.unwrap_or(Path::new(".")))?.sync_all()?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;

        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let torn_tail_bytes = bytes.len() - whole;
        if torn_tail_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                torn_tail_bytes,
                "ledger log ends in a torn line (crash during an append); dropping it"
            );
            file.set_len(whole as u64)?;
            file.sync_all()?;
        }

        let mut charges = Vec::new();
        for (index, line) in bytes[..whole].split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let charge = serde_json::from_slice(line).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: line {} is corrupt ({e}); refusing to start rather than forget a charge",
                        path.display(),
                        index + 1
                    ),
                )
            })?;
            charges.push(charge);
        }
        tracing::info!(path = %path.display(), charges = charges.len(), "ledger log replayed");
        let log = Self {
            file,
            len: whole as u64,
        };
        Ok((
            log,
            Replay {
                charges,
                torn_tail_bytes,
            },
        ))
    }

    /// The log line of `charge`, newline included.
    pub fn line(charge: &Charge) -> io::Result<Vec<u8>> {
        let mut line = serde_json::to_vec(charge)?;
        line.push(b'\n');
        Ok(line)
    }

    /// Appends `batch`'s lines ([`Self::line`]) with one write and one sync: a
    /// crash tears at most the last line, and none is acknowledged before
    /// the sync that covers them all.
    pub fn append(&mut self, batch: &[&[u8]]) -> io::Result<()> {
        let lines = batch.concat();
        let written = self
            .file
            .write_all(&lines)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += lines.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }
}
