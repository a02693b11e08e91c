//! One writer per SQLite data directory. `serve` holds an exclusive lock
//! on `<data_dir>/gateway.lock` while it runs; the kernel releases it when
//! the process ends, however it ends (a crash leaves no stale lock). A
//! second gateway on the same data directory refuses to start and names
//! the first one's pid and address: two gateways on one SQLite store would
//! poll the same bots and answer messages twice.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;

/// The lock file's name in the data directory.
pub const FILE: &str = "gateway.lock";

/// Held while the gateway runs; dropping it releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    path: std::path::PathBuf,
}

impl DataDirLock {
    /// Lock `dir` for this process, or say who holds it. Nothing is
    /// written yet (a start that fails next, as on a wrong passphrase,
    /// changes no file): [`DataDirLock::record`] says who holds it once
    /// the store is open.
    pub fn acquire(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        let path = dir.join(FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut held = String::new();
                let _ = file.read_to_string(&mut held);
                let field = |name: &str| {
                    held.lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}=")))
                        .unwrap_or("?")
                        .to_string()
                };
                anyhow::bail!(
                    "another switchboard (pid {}, at {}) is running on the data directory {}: stop it first, or give this one a data directory of its own (--data-dir). Two gateways on one SQLite store would poll the same bots and answer messages twice.",
                    field("pid"),
                    field("address"),
                    dir.display()
                );
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        Ok(Self { file, path })
    }

    /// Write this process's pid and `address` into the lock file, for the
    /// message a second gateway gets.
    pub fn record(&mut self, address: &str) -> anyhow::Result<()> {
        let record = format!("pid={}\naddress={address}\n", std::process::id());
        let written = (|| -> std::io::Result<()> {
            self.file.set_len(0)?;
            self.file.rewind()?;
            self.file.write_all(record.as_bytes())?;
            self.file.sync_all()
        })();
        written.with_context(|| format!("cannot write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut first = DataDirLock::acquire(dir.path()).expect("first");
        first.record("http://127.0.0.1:1").expect("recorded");
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("http://127.0.0.1:1"), "{text}");
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again");
    }
}
