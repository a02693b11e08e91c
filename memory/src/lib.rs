//! Persistence for Switchboard.
//!
//! [`Store`] is the one interface the gateway uses: sessions, transcript
//! entries, the durable ingress queue, pairing requests and allowlists,
//! and the audit log (kept in order here, signed by the gateway). Each
//! backend implements it whole ([`SqliteStore`] embedded by default,
//! [`PgStore`] for several gateways sharing one database), and one
//! conformance suite in `tests/store_conformance.rs` runs against each.
//!
//! Encryption at rest happens here too: [`SealedStore`] wraps any backend
//! and seals user content (transcripts, queued messages, approval
//! arguments, memories, secrets) with the keys of a [`crypto::Keyring`]
//! before the backend sees it, so callers see plain records and no backend
//! sees plain text. [`search`] is the in-memory ranked index long-term
//! memory is searched with.
//!
//! This crate depends on no other workspace crate: it knows nothing of
//! channels, agents or policies.

mod coordination;
pub mod crypto;
mod error;
mod postgres;
mod records;
mod sealed;
pub mod search;
mod sqlite;
mod store;

pub use coordination::{Coordination, LeaseRecord, MAX_NOTICE, ReplicaRecord};
pub use error::StoreError;
pub use postgres::{PgStore, redact_url};
pub use records::{
    AllowEntry, ApprovalRecord, AuditCheckpoint, AuditRecord, Cell, Column, CronJobRecord,
    CronRunRecord, ForgetReport, IngressAccept, IngressRecord, IngressStatus, MemoryRecord,
    NewPairing, PairingRequest, Role, SecretInfo, SessionRecord, TokenCounts, TranscriptEntry,
    TurnBegin, TurnCommit, TurnEntry, TurnUsage, subject_of,
};
pub use sealed::{KEYRING_TOPIC, SHARED_KEYRING, SealedStore};
pub use sqlite::SqliteStore;
pub use store::Store;
