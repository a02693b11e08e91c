//! The error type of the store.

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated; `path` names it.
    #[error("cannot open the database at {path}: {source}")]
    Open {
        /// The database location.
        path: String,
        /// The underlying error.
        #[source]
        source: sqlx::Error,
    },
    /// A schema migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed (locked database, full disk, ...).
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored value could not be read back (a corrupt or foreign row).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// A stored value does not decrypt (a wrong key, or a value changed or
    /// moved from another row).
    #[error("cannot decrypt {what}: {error}")]
    Crypto {
        /// Which value, e.g. `transcript.content of session s_1`.
        what: String,
        /// Why.
        error: crate::crypto::CryptoError,
    },
    /// The keyring could not be read or written.
    #[error(transparent)]
    Keyring(#[from] crate::crypto::KeyringError),
    /// The record the call names does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Another writer changed what the call was based on first (an audit
    /// record's place was taken): read again and retry.
    #[error("changed meanwhile: {0}")]
    Conflict(String),
}

impl StoreError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Query(e) => {
                matches!(
                    e,
                    sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
                ) || e
                    .as_database_error()
                    .is_some_and(|d| d.message().contains("locked") || d.message().contains("busy"))
            }
            _ => false,
        }
    }
}
