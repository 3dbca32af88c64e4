//! The one error type of liftlab-store: corruption and I/O kept apart from the caller's mistakes.

use std::path::PathBuf;
use std::sync::Arc;

use liftlab_domain::record::Refusal;
use liftlab_domain::DomainError;

/// Why a store operation failed.
///
/// The variants fall in two groups. `NotFound`, `Conflict`, `Invalid` and `Domain` are answers
/// about the request (the HTTP layer maps them to 404, 409, 422 and 409/422); `Corrupt`, `Io`,
/// `Locked`, `Open` and `Closed` are failures of the store itself (5xx, or a refusal to start).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed experiment, version or record does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked up, e.g. `experiment "triage"`.
        what: String,
    },
    /// The request contradicts stored state: an existing key, a stale version, a task id bound to another unit.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request is malformed for the store: an arm the spec lacks, an unknown epoch, an empty id.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The domain refused the change (a lifecycle transition that is not allowed, a frozen field).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A stored record could not be decoded: unknown version tag, truncated or garbled bytes.
    #[error("corrupt record in tree {tree} at key {key}: {reason}")]
    Corrupt {
        /// The sled tree (or in-memory table) that holds the record.
        tree: &'static str,
        /// The record's key, hex-encoded.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The disk refused a read, a write or a flush.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What the store was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Another process holds the data directory's lock.
    #[error("data directory {path} is locked by another process (is another liftlab running?)")]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// The data directory cannot be opened: missing permissions, not a directory, or an unreadable database.
    #[error("cannot open data directory {path}: {reason}")]
    Open {
        /// The data directory.
        path: PathBuf,
        /// Why, in words.
        reason: String,
    },
    /// A bug: an operation panicked. It changed nothing; the store goes on serving.
    #[error("internal error: {0}")]
    Internal(String),
    /// The store was closed (or its writer stopped after a failed flush); nothing more is accepted.
    #[error("the store is closed")]
    Closed,
}

/// The result type of every store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<Refusal> for StoreError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Invalid(m) => StoreError::Invalid(m),
            Refusal::Conflict(m) => StoreError::Conflict(m),
        }
    }
}

impl StoreError {
    /// A `NotFound` for an experiment key.
    pub(crate) fn no_experiment(key: &str) -> Self {
        StoreError::NotFound {
            what: format!("experiment {key:?}"),
        }
    }

    /// A `Corrupt` for the record at `key` of `tree`.
    pub(crate) fn corrupt(tree: &'static str, key: &[u8], reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            tree,
            key: hex::encode(key),
            reason: reason.into(),
        }
    }

    /// Converts a sled error met while `context`.
    pub(crate) fn sled(context: &'static str, error: sled::Error) -> Self {
        match error {
            sled::Error::Io(source) => StoreError::Io {
                context,
                source: Arc::new(source),
            },
            sled::Error::Corruption { at, .. } => StoreError::Corrupt {
                tree: "sled",
                key: at.map(|p| format!("{p:?}")).unwrap_or_default(),
                reason: format!("sled reports corruption while {context}"),
            },
            other => StoreError::Io {
                context,
                source: Arc::new(std::io::Error::other(other.to_string())),
            },
        }
    }

    /// A copy of a failure of the store itself, handed to every caller of a failed batch.
    ///
    /// Only `Io`, `Corrupt` and `Closed` can fail a whole batch; anything else becomes `Closed`.
    pub(crate) fn for_batch(&self) -> Self {
        match self {
            StoreError::Io { context, source } => StoreError::Io {
                context,
                source: Arc::clone(source),
            },
            StoreError::Corrupt { tree, key, reason } => StoreError::Corrupt {
                tree,
                key: key.clone(),
                reason: reason.clone(),
            },
            _ => StoreError::Closed,
        }
    }

    /// True for failures of the store itself rather than answers about the request.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. }
                | StoreError::Io { .. }
                | StoreError::Locked { .. }
                | StoreError::Open { .. }
                | StoreError::Internal(_)
                | StoreError::Closed
        )
    }
}
