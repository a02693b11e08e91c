//! Opening the store with its encryption (`[store.encryption]`): where the
//! key encryption key comes from, the keyring, the first start that
//! encrypts a plain data directory, and the secrets config files name.
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use switchboard_memory::crypto::{KekSource, Keyring};
use switchboard_memory::{Column, PgStore, SealedStore, SqliteStore, Store};
use zeroize::Zeroizing;

use crate::audit::{Audit, AuditKey};
use crate::config::{EncryptionConfig, EncryptionMode};

/// The environment variable a passphrase is read from first.
pub const PASSPHRASE_ENV: &str = "SWITCHBOARD_PASSPHRASE";
/// The environment variable `keys rotate` reads a new passphrase from.
pub const NEW_PASSPHRASE_ENV: &str = "SWITCHBOARD_NEW_PASSPHRASE";

mod audit_key;

/// `store_meta` keys.
const META_STATE: &str = "encryption";
const META_KEYRING: &str = "keyring";
/// What the audit log's key is derived for from the keyring.
const AUDIT_LABEL: &str = "switchboard audit v1";

/// Where a store lives and how it is encrypted.
#[derive(Debug, Clone)]
pub struct Location {
    /// The data directory (the database is `switchboard.db` in it).
    pub data_dir: PathBuf,
    /// The config directory: the config file's, or the platform's.
    pub config_dir: PathBuf,
    /// `[store.encryption]`.
    pub encryption: EncryptionConfig,
    /// `store.url`: a PostgreSQL database instead of the SQLite file.
    pub url: Option<String>,
}

impl Location {
    /// The database file, or for PostgreSQL where the database is (host,
    /// port and name, never the credentials).
    pub fn db_path(&self) -> PathBuf {
        match &self.url {
            Some(url) if !url.starts_with("secret:") => {
                PathBuf::from(switchboard_memory::redact_url(url))
            }
            Some(_) => PathBuf::from("the PostgreSQL database of store.url"),
            None => self.data_dir.join("switchboard.db"),
        }
    }

    /// The key file (mode `keyfile`).
    pub fn key_file(&self) -> PathBuf {
        self.encryption
            .key_file
            .clone()
            .unwrap_or_else(|| self.config_dir.join("switchboard.key"))
    }

    /// The audit log's key when encryption is off: `audit.key` in the
    /// config directory (in the data directory when the config directory
    /// cannot be written). With encryption on, the key comes from the
    /// keyring.
    pub fn audit_key_file(&self) -> PathBuf {
        self.config_dir.join("audit.key")
    }

    /// The keyring file.
    pub fn keyring(&self) -> PathBuf {
        self.encryption.keyring.clone().unwrap_or_else(|| {
            let key = self.key_file();
            key.parent().map_or_else(
                || PathBuf::from("switchboard.keyring"),
                |d| d.join("switchboard.keyring"),
            )
        })
    }
}

/// The config directory for a config file at `path` (or none).
pub fn config_dir(path: Option<&Path>) -> PathBuf {
    match path.and_then(Path::parent) {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        Some(_) => PathBuf::from("."),
        None => dirs::config_dir()
            .unwrap_or_else(|| PathBuf::from(".config"))
            .join("switchboard"),
    }
}

/// An open store.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The store the gateway uses (sealed unless encryption is off).
    pub store: Arc<dyn Store>,
    /// The same store with its keys, unless encryption is off.
    pub sealed: Option<Arc<SealedStore>>,
    /// The database file.
    pub db_path: PathBuf,
    /// How it is encrypted: `keyfile`, `passphrase` or `off`.
    pub mode: EncryptionMode,
    /// The key the audit log is signed with: derived from the keyring
    /// (it outlives rotations), or the `audit.key` file when encryption is
    /// off.
    pub audit_key: AuditKey,
}

impl Opened {
    /// The audit log of this store.
    pub fn audit(&self) -> Audit {
        Audit::new(self.store.clone(), self.audit_key.clone())
    }
}

/// A passphrase read from a file or credential: the file's text without
/// its trailing newline.
fn read_secret_file(path: &Path, what: &str) -> anyhow::Result<Zeroizing<String>> {
    let text =
        Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
            format!("cannot read the passphrase from {what} {}", path.display())
        })?);
    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    Ok(Zeroizing::new(trimmed.to_string()))
}

/// Ask on the terminal without echo (twice when `confirm`).
fn prompt(question: &str, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    let first = Zeroizing::new(
        rpassword::prompt_password(question).context("cannot read from the terminal")?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("Type it again: ")
                .context("cannot read from the terminal")?,
        );
        if *first != *again {
            anyhow::bail!("the two passphrases differ; nothing was changed");
        }
    }
    Ok(first)
}

/// The passphrase for `settings`: `SWITCHBOARD_PASSPHRASE`, then
/// `passphrase_file`, then the systemd credential, then the terminal.
/// `creating` asks twice on a terminal.
fn passphrase(settings: &EncryptionConfig, creating: bool) -> anyhow::Result<KekSource> {
    let (passphrase, source) = if let Some(p) = std::env::var_os(PASSPHRASE_ENV) {
        let p = p
            .into_string()
            .map_err(|_| anyhow::anyhow!("{PASSPHRASE_ENV} is not valid UTF-8"))?;
        (Zeroizing::new(p), PASSPHRASE_ENV.to_string())
    } else if let Some(file) = &settings.passphrase_file {
        (
            read_secret_file(file, "passphrase_file")?,
            format!("passphrase_file {}", file.display()),
        )
    } else if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY")
        && Path::new(&dir).join(&settings.credential).exists()
    {
        let file = Path::new(&dir).join(&settings.credential);
        (
            read_secret_file(&file, "the systemd credential")?,
            format!("the systemd credential {}", settings.credential),
        )
    } else if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let p = prompt("Passphrase for the Switchboard store: ", creating)?;
        (p, "the terminal".to_string())
    } else {
        anyhow::bail!(
            "[store.encryption] mode is `passphrase` but no passphrase was given: set {PASSPHRASE_ENV}, \
             set store.encryption.passphrase_file, give a systemd credential named `{}` \
             (LoadCredential=), or start it on a terminal to be asked",
            settings.credential
        )
    };
    if passphrase.is_empty() {
        anyhow::bail!("the passphrase from {source} is empty");
    }
    Ok(KekSource::Passphrase {
        passphrase,
        source,
        iterations: settings.iterations,
    })
}

/// The key encryption key's source for `loc`.
fn kek_source(loc: &Location, creating: bool) -> anyhow::Result<KekSource> {
    match loc.encryption.mode {
        EncryptionMode::Passphrase => passphrase(&loc.encryption, creating),
        _ => Ok(KekSource::KeyFile(loc.key_file())),
    }
}

/// Open the store at `loc`: check the key before anything on disk is
/// touched, create the key and keyring at the first start, and encrypt
/// what a plain data directory holds (resumably, with progress on
/// stderr). A wrong key or passphrase changes nothing.
pub async fn open(loc: &Location) -> anyhow::Result<Opened> {
    let db_path = loc.db_path();
    let mode = loc.encryption.mode;
    if mode == EncryptionMode::Off {
        let store = open_db(loc).await?;
        if let Some(state) = store.meta_get(META_STATE).await? {
            store.close().await;
            anyhow::bail!(
                "the store at {} is encrypted ({state}), but [store.encryption] mode is `off`: \
                 set it back to `keyfile` or `passphrase`",
                db_path.display()
            );
        }
        let audit_key = match audit_key::from_file(loc) {
            Ok(k) => k,
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        };
        return Ok(Opened {
            store,
            sealed: None,
            db_path,
            mode,
            audit_key,
        });
    }
    let ring_path = loc.keyring();
    if loc.url.is_some() && !Keyring::exists(&ring_path) {
        fetch_shared_keyring(loc, &ring_path).await?;
    }
    // The key is checked against the keyring before the database is opened.
    let ring = if Keyring::exists(&ring_path) {
        let source = kek_source(loc, false)?;
        let started = std::time::Instant::now();
        let ring = Keyring::open(&ring_path, &source)?;
        if mode == EncryptionMode::Passphrase {
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                iterations = ring.params().iterations.unwrap_or_default(),
                "passphrase accepted (PBKDF2 paid once per start)"
            );
        }
        Some(ring)
    } else {
        None
    };
    let store = open_db(loc).await?;
    let state = store.meta_get(META_STATE).await?;
    let ring = match ring {
        Some(r) => r,
        None => {
            if state.is_some() {
                store.close().await;
                anyhow::bail!(
                    "the store at {} is encrypted, but its keyring {} is missing: restore it \
                     (and the key file or passphrase it was made with) from your backup",
                    db_path.display(),
                    ring_path.display()
                );
            }
            // Replicas starting together for the first time: one makes
            // the keyring, the others wait and take it.
            let creating = match store.coordination() {
                Some(coord) => {
                    let me = format!("keyring-maker-{}", rand::random::<u64>());
                    let deadline = std::time::Instant::now() + KEYRING_WAIT;
                    while !coord
                        .lease_acquire(KEYRING_LEASE, &me, &me, KEYRING_WAIT_MS)
                        .await?
                    {
                        if std::time::Instant::now() >= deadline {
                            store.close().await;
                            anyhow::bail!(
                                "another gateway has been making the keyring of this store for over {} s: \
                                 start again once it is up",
                                KEYRING_WAIT.as_secs()
                            );
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                    if store.meta_get(META_KEYRING_FILE).await?.is_some() {
                        coord.lease_release(KEYRING_LEASE, &me, &me).await?;
                        store.close().await;
                        fetch_shared_keyring(loc, &ring_path).await?;
                        return Box::pin(open(loc)).await;
                    }
                    Some(me)
                }
                None => None,
            };
            let source = kek_source(loc, true)?;
            let key_existed = loc.key_file().exists();
            let created = Keyring::create(&ring_path, &source);
            let ring = match created {
                Ok(r) => r,
                Err(e) => {
                    store.close().await;
                    return Err(e.into());
                }
            };
            match &source {
                KekSource::KeyFile(k) if !key_existed => crate::telemetry::logging::say(&format!(
                    "Created an encryption key at {} and a keyring at {}: the store is encrypted with them. \
                     Back both up (apart from the data directory): without them the data cannot be read.",
                    k.display(),
                    ring_path.display()
                )),
                _ => crate::telemetry::logging::say(&format!(
                    "Created a keyring at {}: the store is encrypted with its keys. Back it up: without it the data cannot be read.",
                    ring_path.display()
                )),
            }
            if loc.url.is_some() {
                share_keyring(store.as_ref(), &ring_path).await?;
            }
            if let (Some(me), Some(coord)) = (creating, store.coordination()) {
                coord.lease_release(KEYRING_LEASE, &me, &me).await?;
            }
            ring
        }
    };
    if let Some(id) = store.meta_get(META_KEYRING).await?
        && id != ring.id()
    {
        store.close().await;
        anyhow::bail!(
            "the keyring {} (id {}) is not the one the store at {} was encrypted with (id {id}): \
             point store.encryption.keyring at the right one",
            ring_path.display(),
            ring.id(),
            db_path.display()
        );
    }
    let audit_key = match ring.derive(AUDIT_LABEL) {
        Ok(k) => AuditKey::new(k),
        Err(e) => {
            store.close().await;
            return Err(anyhow::Error::from(e)
                .context("cannot derive the audit log's key from the keyring"));
        }
    };
    let inner: Arc<dyn Store> = store;
    let sealed = Arc::new(SealedStore::new(inner, Arc::new(ring)));
    if state.as_deref() != Some("sealed") || sealed.keyring().reencrypting() {
        seal_everything(&sealed, state.as_deref() != Some("sealed")).await?;
    }
    Ok(Opened {
        store: sealed.clone(),
        sealed: Some(sealed),
        db_path,
        mode,
        audit_key,
    })
}

async fn open_db(loc: &Location) -> anyhow::Result<Arc<dyn Store>> {
    let store_config = crate::config::StoreConfig {
        url: loc.url.clone(),
        ..Default::default()
    };
    if let Some((url, _)) = store_config.postgres_url()? {
        let store = PgStore::connect(&url).await.with_context(|| {
            format!(
                "cannot open the store at {} (store.url): check that the server runs and takes \
                 the user, password and database the URL names",
                switchboard_memory::redact_url(&url)
            )
        })?;
        return Ok(Arc::new(store));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&loc.data_dir)
        .with_context(|| {
            format!(
                "cannot create the data directory {}",
                loc.data_dir.display()
            )
        })?;
    let path = loc.db_path();
    let store = SqliteStore::open(&path)
        .await
        .with_context(|| format!("cannot open the store at {}", path.display()))?;
    Ok(Arc::new(store))
}

/// `store_meta` key of the keyring file's text, in a PostgreSQL store:
/// every replica opens the same keyring (its data keys wrapped under the
/// key file or passphrase, so the database alone does not open them).
const META_KEYRING_FILE: &str = switchboard_memory::SHARED_KEYRING;

/// The lease held by the replica making a shared store's keyring.
const KEYRING_LEASE: &str = "keyring:create";
/// How long the others wait for it at most.
const KEYRING_WAIT: std::time::Duration = std::time::Duration::from_secs(120);
const KEYRING_WAIT_MS: i64 = 120_000;

/// Write the keyring a replica stored in the database to `ring_path`
/// (mode 0600), when there is one.
async fn fetch_shared_keyring(loc: &Location, ring_path: &Path) -> anyhow::Result<()> {
    let store = open_db(loc).await?;
    let text = store.meta_get(META_KEYRING_FILE).await;
    store.close().await;
    let Some(text) = text? else {
        return Ok(());
    };
    if let Some(dir) = ring_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    crate::staged::replace(ring_path, text.as_bytes())
        .with_context(|| format!("cannot write the shared keyring to {}", ring_path.display()))?;
    crate::telemetry::logging::say(&format!(
        "Took the keyring the other replicas use from the database, into {}.",
        ring_path.display()
    ));
    Ok(())
}

/// Store the keyring file's text in the database for the other replicas.
async fn share_keyring(store: &dyn Store, ring_path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(ring_path)
        .with_context(|| format!("cannot read the keyring {}", ring_path.display()))?;
    store.meta_set(META_KEYRING_FILE, &text).await?;
    Ok(())
}

/// Encrypt every value not under an active key (the first start with
/// encryption, or a re-encryption that was stopped), then wipe the plain
/// remains from the files.
pub async fn seal_everything(sealed: &SealedStore, upgrading: bool) -> anyhow::Result<u64> {
    let store = sealed.inner();
    if upgrading && !sealed.keyring().reencrypting() {
        // A new store (or one with nothing in it) has nothing to encrypt.
        let mut empty = true;
        for column in Column::ALL {
            if !store.cells(column, None, 1).await?.is_empty() {
                empty = false;
                break;
            }
        }
        if empty {
            store.meta_set(META_KEYRING, sealed.keyring().id()).await?;
            store.meta_set(META_STATE, "sealed").await?;
            return Ok(0);
        }
    }
    if upgrading {
        store.meta_set(META_KEYRING, sealed.keyring().id()).await?;
        store.meta_set(META_STATE, "upgrading").await?;
        crate::telemetry::logging::say(&format!(
            "Encrypting the records stored so far (this is done once; it can be stopped and goes on at the next start)…"
        ));
    } else {
        crate::telemetry::logging::say(&format!(
            "Re-encrypting the stored records under new data keys (it can be stopped and goes on at the next start)…"
        ));
    }
    let total = sealed
        .seal_all(upgrading, &mut |column, done| {
            crate::telemetry::logging::say(&format!("  {}: {done} records", column.name()));
        })
        .await?;
    if sealed.keyring().reencrypting() {
        sealed.keyring().finish_reencrypt()?;
    }
    store.scrub().await?;
    store.meta_set(META_STATE, "sealed").await?;
    crate::telemetry::logging::say(&format!(
        "Done: {total} records encrypted; no plain copy is left in the database files."
    ));
    Ok(total)
}

/// The values of the secrets `names`, from the store at `loc`.
pub async fn read_secrets(
    store: &dyn Store,
    names: &[String],
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for name in names {
        if let Some(v) = store
            .secret_get(name)
            .await
            .with_context(|| format!("cannot read the secret `{name}`"))?
        {
            out.insert(name.clone(), v);
        }
    }
    Ok(out)
}

/// Whether `name` can name a secret.
pub fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// `keys rotate`: wrap the data keys under a new key encryption key (a
/// new key file, or a new passphrase from `SWITCHBOARD_NEW_PASSPHRASE` or
/// the terminal), and with `reencrypt` re-seal every record under new
/// data keys.
pub async fn rotate(
    loc: &Location,
    opened: &Opened,
    reencrypt: bool,
    iterations: Option<u32>,
) -> anyhow::Result<()> {
    let Some(sealed) = &opened.sealed else {
        anyhow::bail!("[store.encryption] mode is `off`: there are no keys to rotate");
    };
    let ring = sealed.keyring();
    let source = match loc.encryption.mode {
        EncryptionMode::Passphrase => {
            let passphrase = match std::env::var_os(NEW_PASSPHRASE_ENV) {
                Some(p) => Zeroizing::new(
                    p.into_string()
                        .map_err(|_| anyhow::anyhow!("{NEW_PASSPHRASE_ENV} is not valid UTF-8"))?,
                ),
                None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                    prompt("New passphrase (it may be the current one): ", true)?
                }
                None => anyhow::bail!(
                    "set {NEW_PASSPHRASE_ENV} to the new passphrase (it may be the current one), or run this on a terminal"
                ),
            };
            if passphrase.is_empty() {
                anyhow::bail!("the new passphrase is empty; nothing was changed");
            }
            KekSource::Passphrase {
                passphrase,
                source: "the new passphrase".into(),
                iterations: iterations.unwrap_or(loc.encryption.iterations),
            }
        }
        _ => KekSource::KeyFile(loc.key_file()),
    };
    if let Some(n) = iterations
        && n < switchboard_memory::crypto::MIN_ITERATIONS
    {
        anyhow::bail!(
            "--iterations must be {} or more",
            switchboard_memory::crypto::MIN_ITERATIONS
        );
    }
    ring.rewrap(&source)?;
    crate::telemetry::logging::say(&format!(
        "Re-wrapped {} data keys under a new {} ({}).",
        ring.len(),
        match loc.encryption.mode {
            EncryptionMode::Passphrase => "passphrase key",
            _ => "key file",
        },
        match &source {
            KekSource::KeyFile(p) => p.display().to_string(),
            KekSource::Passphrase { iterations, .. } => format!("PBKDF2, {iterations} iterations"),
        }
    ));
    if reencrypt {
        ring.begin_reencrypt()?;
        seal_everything(sealed, false).await?;
    }
    Ok(())
}
