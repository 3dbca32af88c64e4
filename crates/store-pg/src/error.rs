//! Errors inside a transaction: a `StoreError` for the caller, or a retry of the whole transaction.

use std::sync::Arc;

use liftlab_domain::record::Refusal;
use liftlab_domain::DomainError;
use liftlab_store::StoreError;
use postgres::error::SqlState;

/// Why a transaction did not finish.
#[derive(Debug)]
pub(crate) enum Fail {
    /// An answer for the caller (or a failure of the database, as `StoreError::Io`).
    Store(StoreError),
    /// A serialization failure or a deadlock (SQLSTATE 40001, 40P01), or a row another
    /// transaction inserted first: the whole transaction runs again.
    Retry(String),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl From<Refusal> for Fail {
    fn from(r: Refusal) -> Self {
        Fail::Store(r.into())
    }
}

impl From<DomainError> for Fail {
    fn from(e: DomainError) -> Self {
        Fail::Store(e.into())
    }
}

/// Maps a database error met while `context`: 40001 and 40P01 are retried, the rest is `Io`.
pub(crate) fn pg(context: &'static str) -> impl Fn(postgres::Error) -> Fail {
    move |e| {
        let code = e.code();
        if code == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
            || code == Some(&SqlState::T_R_DEADLOCK_DETECTED)
        {
            return Fail::Retry(format!("{context}: {e}"));
        }
        Fail::Store(io(context, e))
    }
}

/// A database failure as the store's `Io` error.
pub(crate) fn io(context: &'static str, e: postgres::Error) -> StoreError {
    StoreError::Io {
        context,
        source: Arc::new(std::io::Error::other(e.to_string())),
    }
}

/// A stored value that does not decode.
pub(crate) fn corrupt(
    table: &'static str,
    key: &str,
    reason: impl std::fmt::Display,
) -> StoreError {
    StoreError::Corrupt {
        tree: table,
        key: hex::encode(key.as_bytes()),
        reason: reason.to_string(),
    }
}

/// Decodes a stored JSON value of `table` at `key`.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    key: &str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(table, key, format!("cannot be read: {e}")))
}

/// Encodes a value as JSON text; a value that cannot be written fails the operation.
pub(crate) fn encode<T: serde::Serialize + ?Sized>(
    what: &str,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Internal(format!("a {what} cannot be written: {e}")))
}

/// The `NotFound` of an experiment key.
pub(crate) fn no_experiment(key: &str) -> StoreError {
    StoreError::NotFound {
        what: format!("experiment {key:?}"),
    }
}
