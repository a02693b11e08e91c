//! Replacing a file so that an interruption leaves the old file or the
//! new one, never half of one: the new bytes go to a temporary file beside
//! it (same directory, so the rename is atomic), synced, then renamed over
//! it and the directory synced. A symlink keeps pointing where it did (its
//! target is replaced); an existing file keeps its mode and, where this
//! process may, its owner; a new file is private to its owner.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use rand::Rng as _;

/// New bytes for a file, written and synced but not yet in place.
/// Dropped without [`Staged::commit`], the temporary file is removed and
/// the old file is untouched.
#[derive(Debug)]
pub struct Staged {
    tmp: Option<PathBuf>,
    target: PathBuf,
    dir: PathBuf,
}

impl Staged {
    /// Write `bytes` beside `path` (or its symlink's target).
    pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<Self> {
        let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let dir = target
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let name = target
            .file_name()
            .ok_or_else(|| std::io::Error::other("the file has no name"))?
            .to_string_lossy()
            .into_owned();
        let meta = std::fs::metadata(&target).ok();
        let mode = meta
            .as_ref()
            .map_or(0o600, |m| m.permissions().mode() & 0o7777);
        let suffix: u64 = rand::rng().random();
        let tmp = dir.join(format!(".{name}.tmp-{suffix:016x}"));
        let staged = Self {
            tmp: Some(tmp.clone()),
            target,
            dir,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have taken bits away.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if let Some(m) = &meta {
            // Keeps the owner when this process may (as root).
            let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        Ok(staged)
    }

    /// Move the new bytes in place.
    pub fn commit(mut self) -> std::io::Result<()> {
        let tmp = self.tmp.take().expect("not committed yet");
        let moved = std::fs::rename(&tmp, &self.target)
            .and_then(|()| std::fs::File::open(&self.dir)?.sync_all());
        if moved.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        moved
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Replace `path` by `bytes` at once (see the module's doc).
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    Staged::write(path, bytes)?.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_stage_leaves_the_old_file_and_no_temporary_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "old\n").expect("write");
        drop(Staged::write(&path, b"new\n").expect("staged"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "old\n");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
        replace(&path, b"new\n").expect("replaced");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new\n");
    }

    #[test]
    fn a_new_file_is_private_and_a_symlink_keeps_its_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let new = dir.path().join("new.toml");
        replace(&new, b"x\n").expect("written");
        let mode = std::fs::metadata(&new).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&new, &link).expect("link");
        replace(&link, b"y\n").expect("through the link");
        assert!(
            std::fs::symlink_metadata(&link)
                .expect("meta")
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&new).expect("read"), "y\n");
    }
}
