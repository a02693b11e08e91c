//! The control token: from config or `SWITCHBOARD_TOKEN`, else generated
//! once and kept in the data directory with mode 0600. A presented token is
//! checked with [`switchboard_channel::secret_eq`], the one constant-time
//! comparison the channels use too.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::Rng;

/// The file the generated token lives in.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control-token")
}

/// Where the token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `gateway.auth.token` or `SWITCHBOARD_TOKEN`.
    Configured,
    /// The token file written at an earlier start.
    Stored,
    /// Generated now and written to the token file.
    Generated,
}

/// The control token, resolved.
pub fn resolve(
    configured: Option<&str>,
    data_dir: &Path,
) -> std::io::Result<(String, TokenSource)> {
    if let Some(t) = configured.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok((t.to_string(), TokenSource::Configured));
    }
    let path = token_path(data_dir);
    if let Some(t) = read_stored(data_dir)? {
        return Ok((t, TokenSource::Stored));
    }
    let bytes: [u8; 24] = rand::rng().random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(token.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok((token, TokenSource::Generated))
}

/// The token stored in the data directory, if any.
pub fn read_stored(data_dir: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(token_path(data_dir)) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_once_with_private_mode_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (t1, s1) = resolve(None, dir.path()).unwrap();
        assert_eq!(s1, TokenSource::Generated);
        assert_eq!(t1.len(), 48);
        let mode = std::fs::metadata(token_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (t2, s2) = resolve(None, dir.path()).unwrap();
        assert_eq!((t2.as_str(), s2), (t1.as_str(), TokenSource::Stored));
        let (t3, s3) = resolve(Some("configured-token-123"), dir.path()).unwrap();
        assert_eq!(
            (t3.as_str(), s3),
            ("configured-token-123", TokenSource::Configured)
        );
    }
}
