//! The keyring: data keys wrapped under the key encryption key in one
//! file, the pool person keys are handed from, and rotation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{
    CryptoError, KekParams, KekSource, Key, KeyringError, check_aad, create_key_file, kek_of,
    key_id, now_ms, random_id, read_key_file, sync_dir, wrap_aad, write_private,
};

/// One data key of the keyring, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    id: String,
    /// The shared key (records of no one person); else a person's key.
    #[serde(default)]
    shared: bool,
    /// A person key's place in the pool (handed out in this order).
    #[serde(default)]
    seq: u64,
    /// The key sealed under the key encryption key.
    wrapped: String,
    created_at: i64,
    #[serde(default)]
    retired: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct RingFile {
    format: u32,
    id: String,
    kek: KekParams,
    /// A known value sealed under the key encryption key: proves it right
    /// even with no data keys yet.
    check: String,
    keys: Vec<StoredKey>,
    /// A random secret sealed under the key encryption key, which
    /// [`Keyring::derive`] derives keys from. Unlike the data keys it
    /// survives re-encryption (so what it keys, the audit log's chain,
    /// stays verifiable); a rotation re-wraps it with the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    root: Option<String>,
}

#[derive(Debug)]
struct Entry {
    shared: bool,
    seq: u64,
    key: Key,
    created_at: i64,
    retired: bool,
}

#[derive(Debug, Clone)]
struct RingState {
    kek: Key,
    params: KekParams,
    /// Key id → key.
    keys: HashMap<String, Arc<Entry>>,
    /// Pool place → key id, of the person keys not retired.
    pool: std::collections::BTreeMap<u64, String>,
    /// The active shared key's id.
    shared: Option<String>,
    /// Subject → its key's id, as learned from the store this run.
    people: HashMap<String, String>,
    /// The secret derived keys come from (see [`RingFile::root`]).
    root: Option<Key>,
}

/// The data keys, wrapped under the key encryption key, in one file
/// outside the data directory. Records of a person are sealed under a key
/// of their own, handed out from a pool made ahead (so a new person costs
/// no write of this file) and recorded in the store; removing it from
/// here (`forget`) leaves copies of the database made before unreadable
/// for them.
#[derive(Debug)]
pub struct Keyring {
    path: PathBuf,
    id: String,
    state: Mutex<RingState>,
}

/// What the root secret is bound to when sealed under the key encryption
/// key.
fn root_aad(ring: &str) -> Vec<u8> {
    format!("switchboard keyring root\0{ring}").into_bytes()
}

/// Person keys made at once when the pool runs dry (at least; an eighth
/// of the keys held when that is more, so the file is rewritten rarely).
const POOL_REFILL: u64 = 64;
impl Keyring {
    /// Whether a keyring file exists at `path`.
    pub fn exists(path: &Path) -> bool {
        path.exists()
    }

    /// Open the keyring at `path` with the key from `source`. A wrong key
    /// changes nothing on disk.
    pub fn open(path: &Path, source: &KekSource) -> Result<Self, KeyringError> {
        let text = std::fs::read_to_string(path).map_err(|error| KeyringError::Io {
            what: "cannot read the keyring",
            path: path.into(),
            error,
        })?;
        let file: RingFile = serde_json::from_str(&text).map_err(|e| KeyringError::Format {
            path: path.into(),
            detail: e.to_string(),
        })?;
        let wrong = || KeyringError::WrongKey {
            from: source.describe(),
            path: path.into(),
            hint: source.hint(),
        };
        let source_mode = match source {
            KekSource::KeyFile(_) => "keyfile",
            KekSource::Passphrase { .. } => "passphrase",
        };
        if file.kek.mode != source_mode {
            return Err(KeyringError::Format {
                path: path.into(),
                detail: format!(
                    "it was made in mode `{}` but `[store.encryption] mode` is `{source_mode}`; set the mode it was made with",
                    file.kek.mode
                ),
            });
        }
        let (mut kek, params) = kek_of(source, Some(&file.kek))?;
        if kek.open(&check_aad(&file.id), &file.check).is_err() {
            // A rotation stopped between saving the keyring under the new
            // key and moving the new key file over the old one: finish it.
            let fresh = match source {
                KekSource::KeyFile(p) => Some(p.with_extension("key.new")),
                KekSource::Passphrase { .. } => None,
            };
            let recovered = fresh.as_deref().and_then(|f| {
                let key = read_key_file(f).ok().flatten()?;
                key.open(&check_aad(&file.id), &file.check).ok()?;
                Some(key)
            });
            match (recovered, fresh, source) {
                (Some(key), Some(fresh), KekSource::KeyFile(p)) => {
                    std::fs::rename(&fresh, p).map_err(|error| KeyringError::Io {
                        what: "cannot move the new key file into place",
                        path: p.clone(),
                        error,
                    })?;
                    kek = key;
                }
                _ => return Err(wrong()),
            }
        }
        let mut state = RingState {
            kek,
            params,
            keys: HashMap::new(),
            pool: std::collections::BTreeMap::new(),
            shared: None,
            people: HashMap::new(),
            root: None,
        };
        if let Some(sealed) = &file.root {
            let raw = state
                .kek
                .open(&root_aad(&file.id), sealed)
                .map_err(|_| wrong())?;
            state.root = Some(Key::from_slice(&raw).ok_or_else(|| KeyringError::Format {
                path: path.into(),
                detail: "its root secret is not 32 bytes".into(),
            })?);
        }
        for k in &file.keys {
            let raw = state
                .kek
                .open(&wrap_aad(&file.id, &k.id, k.shared), &k.wrapped)
                .map_err(|_| wrong())?;
            let key = Key::from_slice(&raw).ok_or_else(|| KeyringError::Format {
                path: path.into(),
                detail: format!("key {} is not 32 bytes", k.id),
            })?;
            state.add(
                k.id.clone(),
                Entry {
                    shared: k.shared,
                    seq: k.seq,
                    key,
                    created_at: k.created_at,
                    retired: k.retired,
                },
            );
        }
        Ok(Self {
            path: path.into(),
            id: file.id,
            state: Mutex::new(state),
        })
    }

    /// Create a new keyring at `path` (and the key file, in key file mode,
    /// when it is missing) holding the shared key and a first pool of
    /// person keys: another process (`secrets set`) never has to add a key
    /// to the file.
    pub fn create(path: &Path, source: &KekSource) -> Result<Self, KeyringError> {
        let (kek, params) = kek_of(source, None)?;
        let mut state = RingState {
            kek,
            params,
            keys: HashMap::new(),
            pool: std::collections::BTreeMap::new(),
            shared: None,
            people: HashMap::new(),
            root: Some(Key::random()),
        };
        state.new_shared();
        state.refill(0);
        let ring = Self {
            path: path.into(),
            id: random_id(),
            state: Mutex::new(state),
        };
        ring.save(&ring.lock())?;
        Ok(ring)
    }

    /// The keyring's id (stored with the data it encrypts).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The keyring file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the key encryption key is made.
    pub fn params(&self) -> KekParams {
        self.lock().params.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RingState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn save(&self, state: &RingState) -> Result<(), KeyringError> {
        let mut keys: Vec<StoredKey> = state
            .keys
            .iter()
            .map(|(id, e)| StoredKey {
                id: id.clone(),
                shared: e.shared,
                seq: e.seq,
                wrapped: state.kek.seal(
                    "kek",
                    &wrap_aad(&self.id, id, e.shared),
                    &e.key.0.bytes[..],
                ),
                created_at: e.created_at,
                retired: e.retired,
            })
            .collect();
        keys.sort_by(|a, b| (a.seq, a.created_at, &a.id).cmp(&(b.seq, b.created_at, &b.id)));
        let file = RingFile {
            format: 1,
            id: self.id.clone(),
            kek: state.params.clone(),
            check: state.kek.seal("kek", &check_aad(&self.id), b"switchboard"),
            keys,
            root: state
                .root
                .as_ref()
                .map(|k| state.kek.seal("kek", &root_aad(&self.id), &k.0.bytes[..])),
        };
        let text = serde_json::to_vec_pretty(&file).unwrap_or_default();
        write_private(&self.path, &text).map_err(|error| KeyringError::Io {
            what: "cannot write the keyring",
            path: self.path.clone(),
            error,
        })
    }

    /// The active shared key (records of no one person).
    pub fn shared_key(&self) -> Result<(String, Key), KeyringError> {
        let mut state = self.lock();
        if let Some(kid) = state.shared.clone()
            && let Some(e) = state.keys.get(&kid)
        {
            return Ok((kid, e.key.clone()));
        }
        // Saved before it is used; memory changes only once it is.
        let mut next = state.clone();
        let kid = next.new_shared();
        self.save(&next)?;
        *state = next;
        let key = state.keys[&kid].key.clone();
        Ok((kid, key))
    }

    /// A key for `label` (e.g. `switchboard audit v1`): HMAC-SHA256 of the
    /// label under the keyring's root secret. The same for the life of the
    /// keyring: rotations and re-encryptions keep the root. A keyring made
    /// before roots existed gets one now (the file is saved first).
    pub fn derive(&self, label: &str) -> Result<Zeroizing<[u8; 32]>, KeyringError> {
        use pbkdf2::hmac::{Hmac, Mac as _};
        let mut state = self.lock();
        let root = match &state.root {
            Some(root) => root.clone(),
            None => {
                let root = Key::random();
                let mut next = state.clone();
                next.root = Some(root.clone());
                self.save(&next)?;
                *state = next;
                root
            }
        };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&root.0.bytes[..])
            .expect("HMAC takes a key of any length");
        mac.update(label.as_bytes());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        Ok(out)
    }

    /// The key of `subject` learned this run, unless retired or gone.
    pub fn person_key(&self, subject: &str) -> Option<(String, Key)> {
        let state = self.lock();
        let kid = state.people.get(subject)?;
        let e = state.keys.get(kid).filter(|e| !e.retired && !e.shared)?;
        Some((kid.clone(), e.key.clone()))
    }

    /// Remember that `subject`'s records are sealed under `kid` (as the
    /// store says); false when the keyring has no usable such key.
    pub fn learn(&self, subject: &str, kid: &str) -> bool {
        let mut state = self.lock();
        let usable = state.keys.get(kid).is_some_and(|e| !e.retired && !e.shared);
        if usable {
            state.people.insert(subject.to_string(), kid.to_string());
        }
        usable
    }

    /// Forget which key `subject` has this run (its handing out could not
    /// be recorded; the key is not used for anyone).
    pub fn unlearn(&self, subject: &str) {
        self.lock().people.remove(subject);
    }

    /// Hand the pool key at place `seq` (or the first after it) to
    /// `subject`; the pool is refilled (one write of the file) when it runs
    /// dry. Returns the key and the place after it. The caller records
    /// both in the store before sealing anything with the key, so no key is
    /// ever handed out twice.
    pub fn assign(&self, subject: &str, seq: u64) -> Result<(String, Key, u64), KeyringError> {
        let mut state = self.lock();
        let found = state.pool.range(seq..).next().map(|(s, k)| (*s, k.clone()));
        let (place, kid) = match found {
            Some(f) => f,
            None => {
                let from = state
                    .pool
                    .keys()
                    .next_back()
                    .map_or(seq, |last| (last + 1).max(seq));
                let mut next = state.clone();
                next.refill(from);
                self.save(&next)?;
                *state = next;
                let (s, k) = state
                    .pool
                    .range(seq..)
                    .next()
                    .map(|(s, k)| (*s, k.clone()))
                    .ok_or_else(|| KeyringError::Format {
                        path: self.path.clone(),
                        detail: "the key pool did not refill".into(),
                    })?;
                (s, k)
            }
        };
        state.pool.remove(&place);
        state.people.insert(subject.to_string(), kid.clone());
        let key = state.keys[&kid].key.clone();
        Ok((kid, key, place + 1))
    }

    /// The key named `kid`: whether it is the shared one, the key, and
    /// whether it is retired.
    pub fn key_by_id(&self, kid: &str) -> Option<(bool, Key, bool)> {
        let state = self.lock();
        state
            .keys
            .get(kid)
            .map(|e| (e.shared, e.key.clone(), e.retired))
    }

    /// Destroy the person keys `kids` (a shared key is never destroyed),
    /// and forget `subject`. Returns how many were destroyed.
    pub fn destroy(&self, subject: &str, kids: &[String]) -> Result<usize, KeyringError> {
        // Changed on a copy, kept only once saved.
        let mut guard = self.lock();
        let mut state = guard.clone();
        let mut n = 0;
        for kid in kids {
            if state.keys.get(kid).is_some_and(|e| !e.shared) {
                state.keys.remove(kid);
                n += 1;
            }
        }
        state.people.remove(subject);
        let gone: Vec<u64> = state
            .pool
            .iter()
            .filter(|(_, k)| !state.keys.contains_key(*k))
            .map(|(s, _)| *s)
            .collect();
        for s in gone {
            state.pool.remove(&s);
        }
        if n > 0 {
            self.save(&state)?;
        }
        *guard = state;
        Ok(n)
    }

    /// Wrap every data key under the key from `source` instead (a new key
    /// file is written beside the old one first and moved over it once the
    /// keyring is saved). The data keys stay; records need no rewriting.
    pub fn rewrap(&self, source: &KekSource) -> Result<(), KeyringError> {
        let mut state = self.lock();
        let (kek, params) = match source {
            KekSource::KeyFile(path) => {
                let fresh = path.with_extension("key.new");
                let _ = std::fs::remove_file(&fresh);
                let key = create_key_file(&fresh)?;
                (
                    key,
                    KekParams {
                        mode: "keyfile".into(),
                        salt: None,
                        iterations: None,
                    },
                )
            }
            KekSource::Passphrase { .. } => kek_of(source, None)?,
        };
        let old = std::mem::replace(&mut state.kek, kek);
        let old_params = std::mem::replace(&mut state.params, params);
        if let Err(e) = self.save(&state) {
            state.kek = old;
            state.params = old_params;
            return Err(e);
        }
        if let KekSource::KeyFile(path) = source {
            let fresh = path.with_extension("key.new");
            std::fs::rename(&fresh, path)
                .and_then(|()| sync_dir(path))
                .map_err(|error| KeyringError::Io {
                    what: "cannot move the new key file into place",
                    path: path.clone(),
                    error,
                })?;
        }
        Ok(())
    }

    /// Start re-encryption: every key is retired, a new shared key and a
    /// new pool are made, and each person gets a new key when next used.
    /// Records under retired keys are then re-sealed
    /// ([`Keyring::finish_reencrypt`] drops the retired keys). Does nothing
    /// when a re-encryption is already under way.
    pub fn begin_reencrypt(&self) -> Result<(), KeyringError> {
        // Changed on a copy, kept only once saved.
        let mut guard = self.lock();
        let mut state = guard.clone();
        if state.keys.values().any(|e| e.retired) {
            return Ok(());
        }
        let ids: Vec<String> = state.keys.keys().cloned().collect();
        for id in ids {
            if let Some(e) = state.keys.get(&id) {
                let retired = Entry {
                    shared: e.shared,
                    seq: e.seq,
                    key: e.key.clone(),
                    created_at: e.created_at,
                    retired: true,
                };
                state.keys.insert(id, Arc::new(retired));
            }
        }
        let next = state.keys.values().map(|e| e.seq + 1).max().unwrap_or(0);
        state.pool.clear();
        state.people.clear();
        state.shared = None;
        state.new_shared();
        state.refill(next);
        self.save(&state)?;
        *guard = state;
        Ok(())
    }

    /// Whether retired keys wait for their records to be re-sealed.
    pub fn reencrypting(&self) -> bool {
        self.lock().keys.values().any(|e| e.retired)
    }

    /// Drop the retired keys once nothing is sealed under them.
    pub fn finish_reencrypt(&self) -> Result<(), KeyringError> {
        // Changed on a copy, kept only once saved.
        let mut guard = self.lock();
        let mut state = guard.clone();
        let before = state.keys.len();
        state.keys.retain(|_, e| !e.retired);
        if state.keys.len() != before {
            self.save(&state)?;
        }
        *guard = state;
        Ok(())
    }

    /// The keyring file's text as saved (its keys wrapped under the key
    /// encryption key).
    pub fn text(&self) -> Result<String, KeyringError> {
        std::fs::read_to_string(&self.path).map_err(|error| KeyringError::Io {
            what: "cannot read the keyring",
            path: self.path.clone(),
            error,
        })
    }

    /// Take in the keys of `text`, another copy of this keyring (another
    /// replica's, which made keys of its own since): what this copy lacks
    /// is added, to open what they seal, and saved. Keys it has are kept
    /// as they are, and an added key never goes into this copy's pool, so
    /// it is handed out only by the copy that made it. Returns how many
    /// keys were added.
    pub fn merge(&self, text: &str) -> Result<usize, KeyringError> {
        let file: RingFile = serde_json::from_str(text).map_err(|e| KeyringError::Format {
            path: self.path.clone(),
            detail: format!("the other copy does not read: {e}"),
        })?;
        if file.id != self.id {
            return Err(KeyringError::Format {
                path: self.path.clone(),
                detail: format!("the other copy is of keyring {}, not {}", file.id, self.id),
            });
        }
        let mut state = self.lock();
        let mut next = state.clone();
        let mut added = 0;
        for k in &file.keys {
            if next.keys.contains_key(&k.id) {
                continue;
            }
            let raw = next
                .kek
                .open(&wrap_aad(&file.id, &k.id, k.shared), &k.wrapped)
                .map_err(|_| KeyringError::Format {
                    path: self.path.clone(),
                    detail: format!("key {} of the other copy does not unwrap", k.id),
                })?;
            let key = Key::from_slice(&raw).ok_or_else(|| KeyringError::Format {
                path: self.path.clone(),
                detail: format!("key {} is not 32 bytes", k.id),
            })?;
            let entry = Entry {
                shared: k.shared,
                seq: k.seq,
                key,
                created_at: k.created_at,
                retired: k.retired,
            };
            // Never into this copy's pool: the other copy's keys are the
            // other replica's to hand out (from the places it reserved).
            next.keys.insert(k.id.clone(), Arc::new(entry));
            added += 1;
        }
        if added > 0 {
            self.save(&next)?;
            *state = next;
        }
        Ok(added)
    }

    /// How many data keys the keyring holds (pool and retired ones
    /// included).
    pub fn len(&self) -> usize {
        self.lock().keys.len()
    }

    /// Whether it holds no data key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Open a sealed value bound to `aad`.
    pub fn unseal(&self, aad: &[u8], sealed: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let kid = key_id(sealed).ok_or(CryptoError::NotSealed)?;
        let (_, key, _) = self
            .key_by_id(kid)
            .ok_or_else(|| CryptoError::UnknownKey(kid.to_string()))?;
        key.open(aad, sealed)
    }
}

impl RingState {
    fn add(&mut self, id: String, e: Entry) {
        if !e.retired {
            if e.shared {
                self.shared = Some(id.clone());
            } else {
                self.pool.insert(e.seq, id.clone());
            }
        }
        self.keys.insert(id, Arc::new(e));
    }

    fn new_shared(&mut self) -> String {
        let kid = random_id();
        self.add(
            kid.clone(),
            Entry {
                shared: true,
                seq: 0,
                key: Key::random(),
                created_at: now_ms(),
                retired: false,
            },
        );
        kid
    }

    /// Make person keys at places `from`, `from + 1`, ….
    fn refill(&mut self, from: u64) {
        let n = POOL_REFILL.max(self.keys.len() as u64 / 8);
        let now = now_ms();
        for seq in from..from + n {
            self.add(
                random_id(),
                Entry {
                    shared: false,
                    seq,
                    key: Key::random(),
                    created_at: now,
                    retired: false,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::MIN_ITERATIONS;
    use super::*;

    #[test]
    fn a_copy_takes_in_the_keys_another_copy_made_and_hands_none_out_twice() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = KekSource::KeyFile(dir.path().join("key"));
        let first = Keyring::create(&dir.path().join("a"), &key_file).unwrap();
        std::fs::copy(dir.path().join("a"), dir.path().join("b")).unwrap();
        let second = Keyring::open(&dir.path().join("b"), &key_file).unwrap();
        // The second replica's places lie past the pool both copies had:
        // it refills with keys of its own and seals with one.
        let (kid, key, _) = second.assign("telegram:9", POOL_REFILL * 3).unwrap();
        assert!(first.key_by_id(&kid).is_none());
        let sealed = key.seal(&kid, b"x", b"only the second knew");
        let added = first.merge(&second.text().unwrap()).unwrap();
        assert_eq!(added as u64, POOL_REFILL);
        assert_eq!(
            &first.unseal(b"x", &sealed).unwrap()[..],
            b"only the second knew"
        );
        // Saved: a reopened first copy still has it; merging again adds
        // nothing; the first's own pool places keep its own keys.
        let reopened = Keyring::open(&dir.path().join("a"), &key_file).unwrap();
        assert_eq!(
            &reopened.unseal(b"x", &sealed).unwrap()[..],
            b"only the second knew"
        );
        assert_eq!(first.merge(&second.text().unwrap()).unwrap(), 0);
        let (own, _, _) = first.assign("telegram:1", 0).unwrap();
        assert_ne!(own, kid);
        // Another keyring's text is refused.
        let other = Keyring::create(&dir.path().join("c"), &key_file).unwrap();
        assert!(first.merge(&other.text().unwrap()).is_err());
    }

    #[test]
    fn a_value_opens_only_with_its_own_binding() {
        let k = Key::random();
        let s = k.seal("abc", b"transcript.content\0s_1", b"secret words");
        assert!(!s.contains("secret"));
        assert_eq!(
            &k.open(b"transcript.content\0s_1", &s).unwrap()[..],
            b"secret words"
        );
        assert!(matches!(
            k.open(b"transcript.content\0s_2", &s),
            Err(CryptoError::Tampered)
        ));
        assert!(Key::random().open(b"transcript.content\0s_1", &s).is_err());
        let again = k.seal("abc", b"transcript.content\0s_1", b"secret words");
        assert_ne!(s, again, "every value gets its own nonce");
    }

    #[test]
    fn a_wrong_passphrase_does_not_open_the_keyring_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let good = KekSource::Passphrase {
            passphrase: Zeroizing::new("correct horse".into()),
            source: "test".into(),
            iterations: MIN_ITERATIONS,
        };
        let ring = Keyring::create(&path, &good).unwrap();
        let (kid, _, _) = ring.assign("telegram:1", 0).unwrap();
        let before = std::fs::read(&path).unwrap();
        let bad = KekSource::Passphrase {
            passphrase: Zeroizing::new("battery staple".into()),
            source: "test".into(),
            iterations: MIN_ITERATIONS,
        };
        let err = Keyring::open(&path, &bad).unwrap_err().to_string();
        assert!(err.contains("passphrase from test"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let again = Keyring::open(&path, &good).unwrap();
        assert!(again.key_by_id(&kid).is_some());
    }

    #[test]
    fn pool_keys_are_handed_out_once_and_the_pool_refills() {
        let dir = tempfile::tempdir().unwrap();
        let source = KekSource::KeyFile(dir.path().join("k.key"));
        let path = dir.path().join("ring");
        let ring = Keyring::create(&path, &source).unwrap();
        let written = std::fs::metadata(&path).unwrap().modified().unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut next = 0;
        for i in 0..(POOL_REFILL * 2 + 3) {
            let (kid, _, after) = ring.assign(&format!("p:{i}"), next).unwrap();
            assert!(seen.insert(kid), "a key is handed out once");
            assert!(after > next);
            next = after;
        }
        // Reopened, the places already handed out are not handed again.
        let reopened = Keyring::open(&path, &source).unwrap();
        let (kid, _, _) = reopened.assign("p:new", next).unwrap();
        assert!(!seen.contains(&kid));
        let _ = written;
    }

    #[test]
    fn destroying_a_person_key_keeps_the_others_and_rewrap_keeps_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let keyfile = dir.path().join("k.key");
        let source = KekSource::KeyFile(keyfile.clone());
        let ring = Keyring::create(&dir.path().join("ring"), &source).unwrap();
        let (ka, a_key, next) = ring.assign("a", 0).unwrap();
        let (_, b_key, _) = ring.assign("b", next).unwrap();
        let a = a_key.seal(&ka, b"x", b"alpha");
        let (kb, _) = (ring.person_key("b").unwrap().0, ());
        let b = b_key.seal(&kb, b"x", b"beta");
        let old_key = std::fs::read(&keyfile).unwrap();
        ring.rewrap(&source).unwrap();
        assert_ne!(std::fs::read(&keyfile).unwrap(), old_key);
        let reopened = Keyring::open(&dir.path().join("ring"), &source).unwrap();
        assert_eq!(&reopened.unseal(b"x", &a).unwrap()[..], b"alpha");
        let (shared, _) = reopened.shared_key().unwrap();
        assert_eq!(
            reopened
                .destroy("a", &[ka.clone(), shared.clone()])
                .unwrap(),
            1,
            "never the shared key"
        );
        let reopened = Keyring::open(&dir.path().join("ring"), &source).unwrap();
        assert!(matches!(
            reopened.unseal(b"x", &a),
            Err(CryptoError::UnknownKey(_))
        ));
        assert_eq!(&reopened.unseal(b"x", &b).unwrap()[..], b"beta");
        assert!(reopened.key_by_id(&shared).is_some());
    }

    #[test]
    fn a_derived_key_outlives_rotation_and_reencryption() {
        let dir = tempfile::tempdir().unwrap();
        let source = KekSource::KeyFile(dir.path().join("k.key"));
        let path = dir.path().join("ring");
        let ring = Keyring::create(&path, &source).unwrap();
        let audit = ring.derive("switchboard audit v1").unwrap();
        assert_ne!(*audit, *ring.derive("another label").unwrap());
        ring.rewrap(&source).unwrap();
        ring.begin_reencrypt().unwrap();
        ring.finish_reencrypt().unwrap();
        assert_eq!(*ring.derive("switchboard audit v1").unwrap(), *audit);
        let reopened = Keyring::open(&path, &source).unwrap();
        assert_eq!(
            *reopened.derive("switchboard audit v1").unwrap(),
            *audit,
            "the root is kept in the file, wrapped under the new key"
        );
        use base64::Engine as _;
        let text = std::fs::read_to_string(&path).unwrap();
        let root = reopened.lock().root.clone().expect("a root");
        let b64 = base64::engine::general_purpose::STANDARD.encode(&root.0.bytes[..]);
        assert!(!text.contains(&b64), "the root is stored wrapped only");
    }

    #[test]
    fn a_keyring_made_before_roots_gets_one_that_stays() {
        let dir = tempfile::tempdir().unwrap();
        let source = KekSource::KeyFile(dir.path().join("k.key"));
        let path = dir.path().join("ring");
        Keyring::create(&path, &source).unwrap();
        let mut file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(file["root"].is_string());
        file.as_object_mut().unwrap().remove("root");
        std::fs::write(&path, file.to_string()).unwrap();
        let old = Keyring::open(&path, &source).unwrap();
        let first = old.derive("switchboard audit v1").unwrap();
        let reopened = Keyring::open(&path, &source).unwrap();
        assert_eq!(*reopened.derive("switchboard audit v1").unwrap(), *first);
    }
}
