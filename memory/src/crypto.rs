//! Encryption at rest: AES-256-GCM sealing of single values, and the
//! envelope keys they are sealed under.
//!
//! A sealed value is `sb1:<key id>:<base64 of nonce ‖ ciphertext ‖ tag>`,
//! with a random 96-bit nonce per value and associated data naming the
//! column and the row (or session) it belongs to, so a value copied into
//! another row does not open. Data keys are random; the [`Keyring`]
//! file holds them wrapped (sealed) under the key encryption key, which
//! comes from a key file or a passphrase (PBKDF2-HMAC-SHA256). Key
//! material lives in [`Key`], zeroized on drop.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{AeadInPlace as _, KeyInit as _};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The prefix of every sealed value.
pub const PREFIX: &str = "sb1:";
/// PBKDF2 iterations below which a passphrase is not accepted.
pub const MIN_ITERATIONS: u32 = 600_000;

/// A 256-bit key, zeroized when dropped; never printed. Clones share one
/// copy.
///
/// Its cipher (the expanded key schedule, about 1 KiB) is made for each
/// value sealed or opened and zeroized as it drops (AES's round keys and
/// GHASH's key: the `zeroize` features of `aes`, `aes-gcm` and
/// `polyval`); with AES-NI
/// that costs about a tenth of a microsecond, while keeping it cost a KiB
/// for every person whose key the gateway holds (100 MB at 100,000).
#[derive(Clone)]
pub struct Key(Arc<KeyInner>);

struct KeyInner {
    bytes: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

impl Key {
    /// A fresh random key.
    pub fn random() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::fill(&mut k[..]);
        Self::from_array(k)
    }

    /// The key derived from `passphrase` with PBKDF2-HMAC-SHA256.
    pub fn derive(passphrase: &[u8], salt: &[u8], iterations: u32) -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(passphrase, salt, iterations, &mut k[..]);
        Self::from_array(k)
    }

    fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Self::from_array(Zeroizing::new(arr)))
    }

    /// A key of these 32 bytes (one derived with
    /// [`Keyring::derive`](keyring::Keyring::derive)).
    pub fn from_secret(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self::from_array(bytes)
    }

    fn from_array(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(Arc::new(KeyInner { bytes }))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.0.bytes).into())
    }

    /// Seal `plain` under this key (named `kid` in the result), bound to
    /// `aad`.
    pub fn seal(&self, kid: &str, aad: &[u8], plain: &[u8]) -> String {
        let nonce: [u8; 12] = rand::random();
        let mut raw = Vec::with_capacity(12 + plain.len() + 16);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(plain);
        let tag = self
            .cipher()
            .encrypt_in_place_detached(&Nonce::from(nonce), aad, &mut raw[12..])
            .expect("AES-GCM seals any value shorter than 64 GiB");
        raw.extend_from_slice(&tag);
        let mut out =
            String::with_capacity(PREFIX.len() + kid.len() + 1 + raw.len().div_ceil(3) * 4);
        out.push_str(PREFIX);
        out.push_str(kid);
        out.push(':');
        B64.encode_string(&raw, &mut out);
        out
    }

    /// Open a value sealed under this key with `aad`.
    pub fn open(&self, aad: &[u8], sealed: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (_, raw) = parse(sealed).ok_or(CryptoError::NotSealed)?;
        let mut raw = Zeroizing::new(raw);
        if raw.len() < 12 + 16 {
            return Err(CryptoError::Tampered);
        }
        let tag_at = raw.len() - 16;
        let (head, tag) = raw.split_at_mut(tag_at);
        let (nonce, body) = head.split_at_mut(12);
        let nonce: [u8; 12] = (&*nonce).try_into().map_err(|_| CryptoError::Tampered)?;
        let tag: [u8; 16] = (&*tag).try_into().map_err(|_| CryptoError::Tampered)?;
        self.cipher()
            .decrypt_in_place_detached(&Nonce::from(nonce), aad, body, &Tag::from(tag))
            .map_err(|_| CryptoError::Tampered)?;
        raw.copy_within(12..tag_at, 0);
        raw.truncate(tag_at - 12);
        Ok(raw)
    }
}

/// The key id and raw bytes of a sealed value; `None` when `value` is not
/// one.
pub fn parse(value: &str) -> Option<(&str, Vec<u8>)> {
    let rest = value.strip_prefix(PREFIX)?;
    let (kid, body) = rest.split_once(':')?;
    if kid.is_empty() || kid.len() > 32 || !kid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((kid, B64.decode(body).ok()?))
}

/// The key id a sealed value names, if it is one.
pub fn key_id(value: &str) -> Option<&str> {
    let rest = value.strip_prefix(PREFIX)?;
    rest.split_once(':').map(|(kid, _)| kid)
}

/// Why a value or the keyring could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The value is not in the sealed format.
    #[error("the value is not encrypted")]
    NotSealed,
    /// Authentication failed: a wrong key, or the value was changed or
    /// moved from another row.
    #[error("the value does not decrypt with its key (changed, or moved from another row)")]
    Tampered,
    /// The value names a key the keyring does not hold.
    #[error("the value is encrypted under key {0}, which the keyring does not hold")]
    UnknownKey(String),
}

/// Why the keyring could not be opened, created or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The key encryption key does not open the keyring.
    #[error(
        "the {from} does not open the keyring {path}: it is not the key the data was encrypted with. Check {hint}. Nothing was changed."
    )]
    WrongKey {
        /// Which source the key came from.
        from: String,
        /// The keyring file.
        path: PathBuf,
        /// What to check.
        hint: String,
    },
    /// A file could not be read or written.
    #[error("{what} {path}: {error}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// The keyring or key file is not in the expected format.
    #[error("{path} is not a Switchboard key file or keyring: {detail}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// How the key encryption key was made, as stored in the keyring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KekParams {
    /// `keyfile` or `passphrase`.
    pub mode: String,
    /// PBKDF2 salt (base64), passphrase mode only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// PBKDF2 iterations, passphrase mode only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
}

/// Where the key encryption key comes from.
#[derive(Clone)]
pub enum KekSource {
    /// A random key in a file (created when missing, mode 0600).
    KeyFile(PathBuf),
    /// A passphrase, and where it came from (for messages).
    Passphrase {
        /// The passphrase.
        passphrase: Zeroizing<String>,
        /// Which source it came from, e.g. `SWITCHBOARD_PASSPHRASE`.
        source: String,
        /// PBKDF2 iterations for a new keyring (or a rotation).
        iterations: u32,
    },
}

impl std::fmt::Debug for KekSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the passphrase itself.
        f.write_str(&self.describe())
    }
}

impl KekSource {
    fn describe(&self) -> String {
        match self {
            KekSource::KeyFile(p) => format!("key file {}", p.display()),
            KekSource::Passphrase { source, .. } => format!("passphrase from {source}"),
        }
    }

    fn hint(&self) -> String {
        match self {
            KekSource::KeyFile(p) => format!(
                "that {} is the key file this keyring was made with (restore it from your backup)",
                p.display()
            ),
            KekSource::Passphrase { source, .. } => {
                format!("the passphrase in {source} (a typo, a trailing space, or an old one)")
            }
        }
    }
}

mod keyring;
pub use keyring::Keyring;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn random_id() -> String {
    let b: [u8; 8] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn check_aad(id: &str) -> Vec<u8> {
    format!("switchboard keyring check\0{id}").into_bytes()
}

fn wrap_aad(ring: &str, kid: &str, shared: bool) -> Vec<u8> {
    format!(
        "switchboard data key\0{ring}\0{kid}\0{}",
        if shared { "shared" } else { "person" }
    )
    .into_bytes()
}

/// Write `bytes` to `path` atomically with mode 0600: a temporary file
/// beside it, synced, renamed over it, and the directory synced.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Sync the directory holding `path`, so a new or renamed file in it
/// survives a power loss.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

/// The key in key file `path`; `Ok(None)` when there is no such file.
pub fn read_key_file(path: &Path) -> Result<Option<Key>, KeyringError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(KeyringError::Io {
                what: "cannot read the key file",
                path: path.into(),
                error,
            });
        }
    };
    let bytes = Zeroizing::new(B64.decode(text.trim()).map_err(|_| KeyringError::Format {
        path: path.into(),
        detail: "not base64".into(),
    })?);
    let key = Key::from_slice(&bytes).ok_or_else(|| KeyringError::Format {
        path: path.into(),
        detail: format!("{} bytes where 32 were expected", bytes.len()),
    })?;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the key file can be read by other users: run `chmod 600` on it"
        );
    }
    Ok(Some(key))
}

/// Create key file `path` with a fresh key (mode 0600); fails if it exists.
pub fn create_key_file(path: &Path) -> Result<Key, KeyringError> {
    let key = Key::random();
    let text = Zeroizing::new(format!("{}\n", B64.encode(&key.0.bytes[..])));
    let io = |error| KeyringError::Io {
        what: "cannot create the key file",
        path: path.into(),
        error,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    sync_dir(path).map_err(io)?;
    Ok(key)
}

/// The key encryption key of `source` for a keyring made with `params`
/// (`None`: a new keyring), and the parameters to store with it.
fn kek_of(
    source: &KekSource,
    params: Option<&KekParams>,
) -> Result<(Key, KekParams), KeyringError> {
    match source {
        KekSource::KeyFile(path) => {
            let key = match read_key_file(path)? {
                Some(k) => k,
                None if params.is_none() => create_key_file(path)?,
                None => {
                    return Err(KeyringError::Io {
                        what: "the key file the keyring was made with is missing",
                        path: path.clone(),
                        error: std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "restore it from your backup; without it the stored data cannot be read",
                        ),
                    });
                }
            };
            Ok((
                key,
                KekParams {
                    mode: "keyfile".into(),
                    salt: None,
                    iterations: None,
                },
            ))
        }
        KekSource::Passphrase {
            passphrase,
            iterations,
            ..
        } => {
            let (salt, iterations) = match params {
                Some(p) if p.mode == "passphrase" => {
                    let salt = p
                        .salt
                        .as_deref()
                        .and_then(|s| B64.decode(s).ok())
                        .unwrap_or_default();
                    (salt, p.iterations.unwrap_or(MIN_ITERATIONS))
                }
                _ => (
                    rand::random::<[u8; 16]>().to_vec(),
                    (*iterations).max(MIN_ITERATIONS),
                ),
            };
            let key = Key::derive(passphrase.as_bytes(), &salt, iterations);
            Ok((
                key,
                KekParams {
                    mode: "passphrase".into(),
                    salt: Some(B64.encode(&salt)),
                    iterations: Some(iterations),
                },
            ))
        }
    }
}
