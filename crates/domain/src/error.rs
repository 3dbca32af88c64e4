//! The one error type of liftlab-domain, and the pointer-addressed validation report it carries.

use serde::{Deserialize, Serialize};

use crate::lifecycle::Transition;
use crate::model::Status;

/// One validation problem: where it is (an RFC 6901 JSON pointer into the document) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SpecProblem {
    /// RFC 6901 JSON pointer to the offending value ("" is the whole document).
    pub pointer: String,
    /// What is wrong, as a sentence fragment without a trailing full stop.
    pub message: String,
}

/// Every problem found in one document (an experiment spec or an assignment request).
///
/// Validation never stops at the first problem, so a client can fix everything in one round.
/// The list is never empty when returned as an error.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SpecErrors {
    /// The problems, in document order.
    pub problems: Vec<SpecProblem>,
}

impl SpecErrors {
    /// Records one problem at `pointer`.
    pub fn push(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        self.problems.push(SpecProblem {
            pointer: pointer.into(),
            message: message.into(),
        });
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// The pointers of every problem, in order (handy in tests and logs).
    pub fn pointers(&self) -> Vec<&str> {
        self.problems.iter().map(|p| p.pointer.as_str()).collect()
    }
}

impl std::fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.problems.len();
        write!(f, "{n} problem{}", if n == 1 { "" } else { "s" })?;
        for (i, p) in self.problems.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            let at = if p.pointer.is_empty() {
                "(document)"
            } else {
                &p.pointer
            };
            write!(f, "{sep}{at}: {}", p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// Why a domain operation was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DomainError {
    /// A document failed validation; every problem is listed with its pointer.
    #[error("invalid document: {0}")]
    Invalid(SpecErrors),
    /// A lifecycle transition that the state machine does not allow.
    #[error("cannot {transition} an experiment that is {from} ({from} → {to} is not allowed)")]
    Transition {
        /// The current status.
        from: Status,
        /// The transition that was asked for.
        transition: Transition,
        /// The status the transition would have led to.
        to: Status,
    },
    /// A new spec for an experiment carries a different key.
    #[error("the spec's key {found} does not match the experiment {expected}")]
    KeyMismatch {
        /// The experiment's key.
        expected: String,
        /// The key in the new spec.
        found: String,
    },
    /// A spec change that would invalidate assignments already served.
    #[error("cannot change {what} of an experiment that is {status}")]
    FrozenField {
        /// What the change touched (arms, unit, hash seed, allocation policy, metric pairs).
        what: &'static str,
        /// The experiment's status.
        status: Status,
    },
    /// A delta tried to remove a unit's old value from an empty accumulator.
    #[error("aggregate {key} is empty, so a unit's old value cannot be removed from it")]
    RemoveFromEmpty {
        /// The aggregate's key, for the log.
        key: String,
    },
    /// An arm key that the experiment does not have.
    #[error("unknown arm {0}")]
    UnknownArm(String),
    /// A bandit reward outside the reward model's domain.
    #[error("reward must be {expected}, got {value}")]
    InvalidReward {
        /// The reward that was given.
        value: f64,
        /// The domain of rewards (finite; in [0, 1] for a binary reward).
        expected: &'static str,
    },
}

/// The error of [`crate::lifecycle::transition`]: always [`DomainError::Transition`].
pub type LifecycleError = DomainError;
