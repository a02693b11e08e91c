//! Opening files inside a scope's host directory without following links.
//!
//! A sandboxed command owns `/workspace` and may replace any directory or
//! file in it with a symbolic link to a host path. The gateway writes
//! attachments into that directory from the host, so every step it takes
//! there starts from a handle on the scope directory and opens each
//! component with `O_NOFOLLOW` (`openat`), never by path: a planted link is
//! refused with [`SandboxError::Path`], never followed.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::SandboxError;

/// A new (or emptied) regular file at `parts` (relative components, such as
/// `["inbox", "report.pdf"]`) under `root`, for writing. Missing directories
/// on the way are made; any component that is a symbolic link, any file
/// with other hard links, and any component that is not a plain name is
/// refused.
pub fn create_file(
    root: &Path,
    parts: &[&str],
    owner: Option<(u32, u32)>,
) -> Result<File, SandboxError> {
    let (name, dirs) = parts
        .split_last()
        .ok_or_else(|| SandboxError::Path("no file name given".into()))?;
    let shown = parts.join("/");
    let mut dir = open_dir(root, &root.display().to_string())?;
    let mut walked = String::new();
    let mut made;
    for part in dirs {
        check_name(part)?;
        if !walked.is_empty() {
            walked.push('/');
        }
        walked.push_str(part);
        match rustix::fs::mkdirat(&dir, *part, Mode::from_raw_mode(0o755)) {
            Ok(()) => made = true,
            Err(Errno::EXIST) => made = false,
            Err(e) => return Err(host(&walked, "make the directory", e)),
        }
        dir = match rustix::fs::openat(
            &dir,
            *part,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) => return Err(refusal(&walked, e, "a directory")),
        };
        if made {
            give(&dir, owner);
        }
    }
    check_name(name)?;
    let fd = rustix::fs::openat(
        &dir,
        *name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| refusal(&shown, e, "a file"))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| host(&shown, "inspect", e))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(SandboxError::Path(format!(
            "{shown} in the workspace is not a regular file; the file was not saved"
        )));
    }
    if stat.st_nlink > 1 {
        return Err(SandboxError::Path(format!(
            "{shown} in the workspace is a hard link to another file; the file was not saved (remove it in the sandbox first)"
        )));
    }
    rustix::fs::ftruncate(&fd, 0).map_err(|e| host(&shown, "empty", e))?;
    give(&fd, owner);
    Ok(File::from(fd))
}

/// Hand what the gateway made to the sandbox user (when we run as root),
/// so commands can change or remove it.
fn give(fd: &OwnedFd, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner
        && rustix::process::geteuid().is_root()
    {
        let _ = rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        );
    }
}

/// Whether `parts` under `root` is a directory reached without links
/// (for callers that only look).
pub fn dir_exists(root: &Path, parts: &[&str]) -> bool {
    let Ok(mut dir) = open_dir(root, "") else {
        return false;
    };
    for part in parts {
        if check_name(part).is_err() {
            return false;
        }
        dir = match rustix::fs::openat(
            &dir,
            *part,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(_) => return false,
        };
    }
    true
}

fn open_dir(root: &Path, shown: &str) -> Result<OwnedFd, SandboxError> {
    rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| host(shown, "open the workspace", e))
}

fn check_name(part: &str) -> Result<(), SandboxError> {
    if part.is_empty() || part == "." || part == ".." || part.contains(['/', '\0']) {
        return Err(SandboxError::Path(format!(
            "{part:?} is not a plain file or directory name"
        )));
    }
    Ok(())
}

/// The refusal for a component that could not be opened as `what`.
fn refusal(shown: &str, e: Errno, what: &str) -> SandboxError {
    match e {
        // O_NOFOLLOW on a link gives ELOOP; O_DIRECTORY on a link to a
        // file (or on a file) gives ENOTDIR.
        Errno::LOOP | Errno::NOTDIR | Errno::MLINK => SandboxError::Path(format!(
            "{shown} in the workspace is a symbolic link or not {what}; it was not followed and the file was not saved (a command in the sandbox put it there)"
        )),
        Errno::ISDIR => SandboxError::Path(format!(
            "{shown} in the workspace is a directory; the file was not saved"
        )),
        e => host(shown, "open", e),
    }
}

fn host(shown: &str, action: &str, e: Errno) -> SandboxError {
    SandboxError::Host(format!(
        "cannot {action} {shown}: {}",
        std::io::Error::from(e)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sb-confined-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("ws")).unwrap();
        std::fs::create_dir_all(dir.join("host")).unwrap();
        dir
    }

    #[test]
    fn writes_inside_and_makes_the_directories() {
        let d = scratch("ok");
        let mut f = create_file(&d.join("ws"), &["inbox", "a.txt"], None).unwrap();
        f.write_all(b"hello").unwrap();
        assert_eq!(std::fs::read(d.join("ws/inbox/a.txt")).unwrap(), b"hello");
        // Written again: emptied first.
        let mut f = create_file(&d.join("ws"), &["inbox", "a.txt"], None).unwrap();
        f.write_all(b"hi").unwrap();
        assert_eq!(std::fs::read(d.join("ws/inbox/a.txt")).unwrap(), b"hi");
        assert!(dir_exists(&d.join("ws"), &["inbox"]));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_linked_directory_is_refused_and_nothing_lands_outside() {
        let d = scratch("dirlink");
        std::os::unix::fs::symlink(d.join("host"), d.join("ws/inbox")).unwrap();
        let err = create_file(&d.join("ws"), &["inbox", "a.txt"], None).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(!d.join("host/a.txt").exists());
        assert!(!dir_exists(&d.join("ws"), &["inbox"]));
        // A link deeper down, too.
        std::fs::remove_file(d.join("ws/inbox")).unwrap();
        std::fs::create_dir_all(d.join("ws/inbox")).unwrap();
        std::os::unix::fs::symlink(d.join("host"), d.join("ws/inbox/sub")).unwrap();
        assert!(create_file(&d.join("ws"), &["inbox", "sub", "a.txt"], None).is_err());
        assert!(!d.join("host/a.txt").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_linked_or_hard_linked_file_is_left_alone() {
        let d = scratch("filelink");
        std::fs::write(d.join("host/secret"), b"keep").unwrap();
        std::fs::create_dir_all(d.join("ws/inbox")).unwrap();
        std::os::unix::fs::symlink(d.join("host/secret"), d.join("ws/inbox/x.txt")).unwrap();
        let err = create_file(&d.join("ws"), &["inbox", "x.txt"], None).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        std::fs::hard_link(d.join("host/secret"), d.join("ws/inbox/y.txt")).unwrap();
        let err = create_file(&d.join("ws"), &["inbox", "y.txt"], None).unwrap_err();
        assert!(err.to_string().contains("hard link"), "{err}");
        assert_eq!(std::fs::read(d.join("host/secret")).unwrap(), b"keep");
        assert!(create_file(&d.join("ws"), &["..", "host", "z"], None).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
