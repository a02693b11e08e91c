//! `[store]`: where and how the gateway's records are kept.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[store]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `[store.encryption]`: encryption at rest.
    pub encryption: EncryptionConfig,
}

/// Where the key encryption key comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionMode {
    /// A random key in a file under the config directory (the default).
    #[default]
    Keyfile,
    /// A passphrase (`SWITCHBOARD_PASSPHRASE`, `passphrase_file`, a
    /// systemd credential, or asked on the terminal), stretched with
    /// PBKDF2-HMAC-SHA256.
    Passphrase,
    /// No encryption: records are stored in plain text (a risk `switchboard
    /// doctor` names).
    Off,
}

impl EncryptionMode {
    /// The name used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionMode::Keyfile => "keyfile",
            EncryptionMode::Passphrase => "passphrase",
            EncryptionMode::Off => "off",
        }
    }
}

/// `[store.encryption]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// `keyfile` (default), `passphrase` or `off`.
    pub mode: EncryptionMode,
    /// The key file (mode `keyfile`). Default `switchboard.key` in the
    /// config directory (the config file's, or `~/.config/switchboard`):
    /// not the data directory, so a copy of that alone cannot be read.
    pub key_file: Option<PathBuf>,
    /// The keyring: the data keys, wrapped under the key from the key file
    /// or passphrase. Default `switchboard.keyring` beside the key file.
    pub keyring: Option<PathBuf>,
    /// A file holding the passphrase (mode `passphrase`; a trailing newline
    /// is ignored). `SWITCHBOARD_PASSPHRASE` wins over it.
    pub passphrase_file: Option<PathBuf>,
    /// The systemd credential holding the passphrase
    /// (`$CREDENTIALS_DIRECTORY/<name>`, from `LoadCredential=` or
    /// `LoadCredentialEncrypted=`). Default `switchboard-passphrase`.
    pub credential: String,
    /// PBKDF2 iterations for a new keyring or a rotation; at least 600,000
    /// (the default). Stored with the keyring, so it can be raised later
    /// with `switchboard keys rotate --iterations N`.
    pub iterations: u32,
}

impl Default for EncryptionConfig {
    fn default() -> Self {
        Self {
            mode: EncryptionMode::default(),
            key_file: None,
            keyring: None,
            passphrase_file: None,
            credential: "switchboard-passphrase".into(),
            iterations: switchboard_memory::crypto::MIN_ITERATIONS,
        }
    }
}
