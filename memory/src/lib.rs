//! Persistence for Switchboard.
//!
//! [`Store`] is the one interface the gateway uses: sessions, transcript
//! entries, the durable ingress queue, pairing requests and allowlists. Each
//! backend implements it whole ([`SqliteStore`] embedded by default; a
//! PostgreSQL backend for scale-out implements the same trait), and one
//! conformance suite in `tests/store_conformance.rs` runs against each.
//!
//! This crate depends on no other workspace crate: it stores plain records and
//! knows nothing of channels, agents or policies.

pub mod crypto;
mod error;
mod records;
mod sealed;
mod sqlite;
mod store;

pub use error::StoreError;
pub use records::{
    AllowEntry, ApprovalRecord, Cell, Column, ForgetReport, IngressAccept, IngressRecord,
    IngressStatus, MemoryRecord, NewPairing, PairingRequest, Role, SecretInfo, SessionRecord,
    TokenCounts, TranscriptEntry, TurnCommit, TurnEntry, TurnUsage, subject_of,
};
pub use sealed::SealedStore;
pub use sqlite::SqliteStore;
pub use store::Store;
