//! The audit log's chain, as plain logic: each record's HMAC-SHA256 over a
//! canonical encoding of its fields and of the HMAC of the record before
//! it, the checkpoint's own HMAC, and the check of a whole log, which
//! names the first record that was changed, removed or moved.
//!
//! The encoding is a domain label, `seq` and `at` as 8 big-endian bytes,
//! then `actor`, `action`, `target`, `source`, `detail` (the stored JSON
//! text) and `prev`, each as its length (8 big-endian bytes) and its
//! UTF-8 bytes: no two records encode alike. It knows nothing of the
//! store or of what the actions mean.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use switchboard_channel::secret_eq;
use switchboard_memory::{AuditCheckpoint, AuditRecord};

/// The `prev` of the first record of a log never pruned.
pub const GENESIS: &str = "";

/// How far from its place a moved record is looked for (besides the place
/// after the record its `prev` names).
const MOVED_WITHIN: i64 = 16;

/// The key the chain is signed with: 32 bytes, zeroized when the last
/// clone goes, never printed.
#[derive(Clone)]
pub struct AuditKey(Arc<Zeroizing<[u8; 32]>>);

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(…)")
    }
}

impl AuditKey {
    /// The key made of `bytes`.
    pub fn new(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(Arc::new(bytes))
    }

    /// A fresh random key.
    pub fn random() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::fill(&mut k[..]);
        Self::new(k)
    }

    fn hmac(&self, domain: &[u8]) -> Hmac<Sha256> {
        let mut m =
            Hmac::<Sha256>::new_from_slice(&self.0[..]).expect("HMAC takes a key of any length");
        m.update(domain);
        m
    }
}

fn field(m: &mut Hmac<Sha256>, bytes: &[u8]) {
    m.update(&(bytes.len() as u64).to_be_bytes());
    m.update(bytes);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The HMAC (hex) of `r` as it stands (its `mac` aside).
pub fn record_mac(key: &AuditKey, r: &AuditRecord) -> String {
    let mut m = key.hmac(b"switchboard audit record v1\0");
    m.update(&r.seq.to_be_bytes());
    m.update(&r.at.to_be_bytes());
    for f in [
        &r.actor, &r.action, &r.target, &r.source, &r.detail, &r.prev,
    ] {
        field(&mut m, f.as_bytes());
    }
    hex(&m.finalize().into_bytes())
}

/// The HMAC (hex) of a checkpoint at record `seq` (whose HMAC is `mac`),
/// made at `at`.
pub fn checkpoint_mac(key: &AuditKey, seq: i64, mac: &str, at: i64) -> String {
    let mut m = key.hmac(b"switchboard audit checkpoint v1\0");
    m.update(&seq.to_be_bytes());
    m.update(&at.to_be_bytes());
    field(&mut m, mac.as_bytes());
    hex(&m.finalize().into_bytes())
}

/// The signed checkpoint that replaces the records up to `last`, made at
/// `at`.
pub fn checkpoint(key: &AuditKey, last: &AuditRecord, at: i64) -> AuditCheckpoint {
    AuditCheckpoint {
        seq: last.seq,
        mac: last.mac.clone(),
        at,
        checkpoint_mac: checkpoint_mac(key, last.seq, &last.mac, at),
    }
}

/// A keyed digest of `value` (16 hex digits): names a person in the log
/// without their id, yet the same for the same id.
pub fn pseudonym(key: &AuditKey, value: &str) -> String {
    let mut m = key.hmac(b"switchboard audit pseudonym v1\0");
    m.update(value.as_bytes());
    hex(&m.finalize().into_bytes()[..8])
}

fn valid(key: &AuditKey, r: &AuditRecord) -> bool {
    secret_eq(&record_mac(key, r), &r.mac)
}

/// A moment as RFC 3339 in UTC to the second (`2026-12-02T08:00:00Z`).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// What is wrong at the place a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The record's HMAC does not match what it says: it was changed (or
    /// made up, or signed with another key).
    Changed,
    /// Records `seq` to `through` are missing.
    Removed {
        /// The last missing one.
        through: i64,
    },
    /// A genuine record out of its place: it was signed as `signed_as`.
    Moved {
        /// The seq it was signed with.
        signed_as: i64,
    },
    /// A genuine record that was signed after another record than the one
    /// before it now (that one was replaced).
    Unlinked,
    /// A record where none may be: before the checkpoint, or twice.
    Misplaced,
    /// The checkpoint's HMAC does not match it.
    Checkpoint,
}

impl Why {
    /// A stable name of the kind: `changed`, `removed`, `moved`,
    /// `unlinked`, `misplaced` or `checkpoint`.
    pub fn id(&self) -> &'static str {
        match self {
            Why::Changed => "changed",
            Why::Removed { .. } => "removed",
            Why::Moved { .. } => "moved",
            Why::Unlinked => "unlinked",
            Why::Misplaced => "misplaced",
            Why::Checkpoint => "checkpoint",
        }
    }
}

/// The first place the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The first bad record (for a removal, the first missing one; for the
    /// checkpoint, the record it names).
    pub seq: i64,
    /// What is wrong there.
    pub why: Why,
    /// The action and time of the record found there (for a removal, of
    /// the next record left).
    pub found: Option<(String, i64)>,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq;
        let what = |next: i64| match &self.found {
            Some((action, at)) => format!("record {next} ({action} at {})", rfc3339(*at)),
            None => format!("record {next}"),
        };
        let before = if seq > 1 {
            format!("record {}", seq - 1)
        } else {
            "the start of the log".to_string()
        };
        match &self.why {
            Why::Changed => write!(f, "{} was changed: its HMAC does not match", what(seq)),
            Why::Removed { through } if *through == seq => write!(
                f,
                "record {seq} was removed: {} follows {before}",
                what(through + 1)
            ),
            Why::Removed { through } => write!(
                f,
                "records {seq} to {through} were removed: {} follows {before}",
                what(through + 1)
            ),
            Why::Moved { signed_as } => write!(
                f,
                "{} is out of place: it was signed as record {signed_as} (records were removed, reordered or renumbered)",
                what(seq)
            ),
            Why::Unlinked => write!(
                f,
                "{} does not follow {before}: it was signed after another record (the one before it was replaced)",
                what(seq)
            ),
            Why::Misplaced => write!(
                f,
                "{} should not be there: it comes before the checkpoint, or twice",
                what(seq)
            ),
            Why::Checkpoint => write!(
                f,
                "the checkpoint (through record {seq}) was changed: its HMAC does not match"
            ),
        }
    }
}

impl std::error::Error for Broken {}

/// The seq `r` was signed with, when it is a genuine record out of place:
/// first the place after the record its `prev` names, then places near.
fn signed_seq(key: &AuditKey, r: &AuditRecord, records: &[AuditRecord]) -> Option<i64> {
    let mut candidates = Vec::new();
    if r.prev == GENESIS {
        candidates.push(1);
    } else if let Some(p) = records.iter().find(|o| o.mac == r.prev) {
        candidates.push(p.seq + 1);
    }
    candidates.extend((1..=MOVED_WITHIN).flat_map(|d| [r.seq + d, r.seq - d]));
    candidates
        .into_iter()
        .filter(|s| *s >= 1 && *s != r.seq)
        .find(|s| {
            valid(
                key,
                &AuditRecord {
                    seq: *s,
                    ..r.clone()
                },
            )
        })
}

/// Check a whole log: `records` in seq order (as the store lists them),
/// starting from `checkpoint` when it was pruned. Returns how many records
/// hold, or the first place the chain breaks.
pub fn verify(
    records: &[AuditRecord],
    checkpoint: Option<&AuditCheckpoint>,
    key: &AuditKey,
) -> Result<usize, Broken> {
    let (mut seq, mut prev) = match checkpoint {
        Some(c) => {
            if !secret_eq(&checkpoint_mac(key, c.seq, &c.mac, c.at), &c.checkpoint_mac) {
                return Err(Broken {
                    seq: c.seq,
                    why: Why::Checkpoint,
                    found: None,
                });
            }
            (c.seq + 1, c.mac.clone())
        }
        None => (1, GENESIS.to_string()),
    };
    for r in records {
        let found = Some((r.action.clone(), r.at));
        if r.seq > seq {
            return Err(Broken {
                seq,
                why: Why::Removed { through: r.seq - 1 },
                found,
            });
        }
        if r.seq < seq {
            return Err(Broken {
                seq: r.seq,
                why: Why::Misplaced,
                found,
            });
        }
        if !valid(key, r) {
            let why = signed_seq(key, r, records)
                .map_or(Why::Changed, |signed_as| Why::Moved { signed_as });
            return Err(Broken { seq, why, found });
        }
        if r.prev != prev {
            return Err(Broken {
                seq,
                why: Why::Unlinked,
                found,
            });
        }
        prev.clone_from(&r.mac);
        seq += 1;
    }
    Ok(records.len())
}
