//! `[store]`: where and how the gateway's records are kept, and
//! `[cluster]`: several gateways sharing one PostgreSQL store.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[store]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The PostgreSQL database to keep the records in, for several
    /// gateways sharing one (`[cluster]`): `"postgres://user:password@host:5432/db"`,
    /// with `?sslmode=require` (or `verify-full&sslrootcert=/path/ca.pem`)
    /// for TLS. Env: `SWITCHBOARD_STORE__URL`. `"secret:NAME"` reads it from
    /// the file `NAME` in `$CREDENTIALS_DIRECTORY` (a systemd credential) or
    /// in `/run/secrets` (compose and Kubernetes secrets): the store's own
    /// secrets are in the database it names. Default: none, an embedded
    /// SQLite database in the data directory.
    pub url: Option<String>,
    /// `[store.encryption]`: encryption at rest.
    pub encryption: EncryptionConfig,
}

impl StoreConfig {
    /// The PostgreSQL URL, its `"secret:NAME"` read from its file: `None`
    /// for SQLite, and the secret's name when the URL came from one.
    pub fn postgres_url(
        &self,
    ) -> anyhow::Result<Option<(zeroize::Zeroizing<String>, Option<String>)>> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let Some(name) = url.strip_prefix("secret:").map(str::trim) else {
            return Ok(Some((zeroize::Zeroizing::new(url.clone()), None)));
        };
        let mut places = Vec::new();
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            places.push(PathBuf::from(dir).join(name));
        }
        places.push(PathBuf::from("/run/secrets").join(name));
        for place in &places {
            if let Ok(text) = std::fs::read_to_string(place) {
                let text = zeroize::Zeroizing::new(text);
                return Ok(Some((
                    zeroize::Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_string()),
                    Some(name.to_string()),
                )));
            }
        }
        anyhow::bail!(
            "store.url names the secret `{name}`, which is not in {}: the store's URL cannot be a stored \
             secret (they are in the database it names); put it in that file, or in SWITCHBOARD_STORE__URL",
            places
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        )
    }
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

/// `[cluster]`: several gateways (replicas) sharing one PostgreSQL store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Run as one of several replicas on the `[store] url` database.
    /// Needs PostgreSQL: a SQLite data directory has one writer, and a
    /// second gateway on it refuses to start. Default false.
    pub enabled: bool,
    /// Seconds a replica's leases (a channel account's listener, a
    /// session's turn) last without renewal: another replica takes over
    /// within this long after the holder dies. 3 to 300; default 15.
    pub lease_secs: u64,
    /// This replica's name in status and leases. Default: the host name
    /// and the process id.
    pub replica_id: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            lease_secs: 15,
            replica_id: None,
        }
    }
}
