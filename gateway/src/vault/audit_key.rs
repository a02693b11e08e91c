//! The audit log's key when encryption is off (there is no keyring to
//! derive it from): 32 random bytes as 64 hex digits in `audit.key`
//! (mode 0600), beside the config or, when its directory cannot be
//! written, in the data directory; made at first use.

use std::io::ErrorKind;
use std::path::Path;

use anyhow::Context as _;
use zeroize::Zeroizing;

use super::Location;
use crate::audit::AuditKey;

/// The key of the store at `loc`: read from the config directory or the
/// data directory (in that order), else made in the first of them that
/// can be written.
pub(super) fn from_file(loc: &Location) -> anyhow::Result<AuditKey> {
    let beside_config = loc.audit_key_file();
    let in_data = loc.data_dir.join("audit.key");
    for path in [&beside_config, &in_data] {
        if let Some(key) = read(path)? {
            return Ok(key);
        }
    }
    match create(&beside_config) {
        Ok(key) => Ok(key),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            tracing::warn!(
                error = %e,
                "the config directory cannot be written: the audit log's key is kept in the data directory, beside the log it signs"
            );
            create(&in_data)
                .with_context(|| format!("cannot create the audit log's key {}", in_data.display()))
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot create the audit log's key {}",
                beside_config.display()
            )
        }),
    }
}

/// The key in `path`; `None` when there is no such file.
fn read(path: &Path) -> anyhow::Result<Option<AuditKey>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read the audit log's key {}", path.display()));
        }
    };
    let key = parse(&text).ok_or_else(|| {
        anyhow::anyhow!(
            "{} is not an audit key (64 hex digits): restore it from your backup, or move it away to start a new key (the records signed with the old one then no longer verify)",
            path.display()
        )
    })?;
    if let Ok(meta) = std::fs::metadata(path)
        && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the audit key can be read by other users: run `chmod 600` on it");
    }
    Ok(Some(AuditKey::new(key)))
}

/// Make a new key at `path`: written beside it, then linked into place,
/// so of two processes starting at once both end up with the one linked
/// first.
fn create(path: &Path) -> std::io::Result<AuditKey> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::fill(&mut bytes[..]);
    let text = Zeroizing::new(format!(
        "{}\n",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    let fresh = path.with_extension(format!("key.new{}", std::process::id()));
    switchboard_memory::crypto::write_private(&fresh, text.as_bytes())?;
    let linked = std::fs::hard_link(&fresh, path);
    let _ = std::fs::remove_file(&fresh);
    match linked {
        Ok(()) => {
            crate::telemetry::logging::say(&format!(
                "Created the audit log's key at {} (encryption is off, so there is no keyring to derive it from). \
                 Back it up with the config: without it `switchboard audit verify` cannot check the log.",
                path.display()
            ));
            Ok(AuditKey::new(bytes))
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let text = Zeroizing::new(std::fs::read_to_string(path)?);
            parse(&text).map(AuditKey::new).ok_or_else(|| {
                std::io::Error::new(
                    ErrorKind::InvalidData,
                    format!("{} is not an audit key (64 hex digits)", path.display()),
                )
            })
        }
        Err(e) => Err(e),
    }
}

/// 32 bytes from 64 hex digits (surrounding space ignored).
fn parse(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let t = text.trim();
    if t.len() != 64 {
        return None;
    }
    let mut k = Zeroizing::new([0u8; 32]);
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EncryptionConfig;

    fn location(config: &Path, data: &Path) -> Location {
        Location {
            data_dir: data.to_path_buf(),
            config_dir: config.to_path_buf(),
            encryption: EncryptionConfig::default(),
            url: None,
        }
    }

    #[test]
    fn the_key_is_made_once_private_and_found_again() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let loc = location(dir.path(), &dir.path().join("data"));
        let first = from_file(&loc).unwrap();
        let path = dir.path().join("audit.key");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = from_file(&loc).unwrap();
        assert_eq!(
            crate::audit::chain::pseudonym(&first, "x"),
            crate::audit::chain::pseudonym(&again, "x"),
            "read again, it is the same key"
        );
        assert!(parse("not hex").is_none());
        assert!(parse(&"g".repeat(64)).is_none());
    }
}
