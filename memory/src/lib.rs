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

mod error;
mod records;
mod sqlite;
mod store;

pub use error::StoreError;
pub use records::{
    AllowEntry, ApprovalRecord, IngressAccept, IngressRecord, IngressStatus, NewPairing,
    PairingRequest, Role, SessionRecord, TokenCounts, TranscriptEntry, TurnCommit, TurnEntry,
    TurnUsage,
};
pub use sqlite::SqliteStore;
pub use store::Store;
