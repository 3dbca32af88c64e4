//! liftlab-domain: experiment specs, assignment policies, outcome folding and report assembly; no IO.
//!
//! Time comes in as [`model::Millis`] arguments and randomness as seeded generators, so every
//! function here is deterministic and testable without a clock, a disk or a network.
//!
//! # API overview
//!
//! - [`model`]: the records every layer shares (assignments, outcomes, unit rows, aggregates,
//!   allocation periods, status), and [`co_moments`], which rebuilds an arm's covariate or
//!   ratio co-moments from its `Overall`, `Paired` and `PairSum` aggregates.
//! - [`spec`]: [`ExperimentSpec::parse`] / [`ExperimentSpec::parse_str`] → a validated spec or
//!   [`SpecErrors`] listing every problem with its JSON pointer; getters for every part;
//!   `Serialize` gives the normalized document (defaults filled in) and `Deserialize`
//!   re-validates it; [`ExperimentSpec::validate_metric_value`] checks outcome values.
//! - [`lifecycle`]: [`Transition`], [`transition`] (draft → running ⇄ paused → stopped) and the
//!   immutable [`ExperimentVersion`] records (`created`, `transitioned`, `updated`, `rebaselined`).
//! - [`hash`]: GrowthBook-compatible `fnv32a`, `hash_v1`, `hash_v2`, `bucket_ranges`, `choose`.
//! - [`assign`]: [`AssignRequest`] (validated), [`choose_arm`] (the allocation-free decision), [`decide`] (the decision plus the record to store) and [`initial_period`].
//! - [`thompson`]: [`BanditState`] (`new`, `observe`, `observe_outcome`, `due`, `recompute`).
//! - [`fold`]: [`fold::fold`] an outcome into its unit row (event values cut to their metric's
//!   cap), giving the [`AggDelta`]s to apply, paired scopes included.
//! - [`outcome`]: [`outcome::OutcomeEvent`] (an event as sent) and [`Outcome::parse`], the
//!   one validation of an outcome against its spec and assignment.
//! - [`record`]: the write path as one pure step: [`record::record_assignment`] and
//!   [`record::record_outcome`] read a store's [`record::Views`] and return the effects to
//!   apply atomically, automatic re-baselines and pauses included.
//! - [`DomainError`]: the crate's one error type.

pub mod assign;
pub mod drift;
pub mod error;
pub mod fold;
pub mod hash;
pub mod lifecycle;
pub mod model;
pub mod outcome;
pub mod record;
pub mod report;
pub mod spec;
pub mod thompson;

pub use assign::{
    choose_arm, decide, initial_period, out_reason, AssignRequest, Decision, OutReason,
};
pub use error::{DomainError, LifecycleError, SpecErrors, SpecProblem};
pub use fold::{fold, Folded};
pub use lifecycle::{transition, Change, ExperimentVersion, Transition};
pub use model::*;
pub use spec::ExperimentSpec;
pub use thompson::BanditState;

/// Converts a length to `f64`.
///
/// Lengths here (arms, events) stay far below 2^53, where the conversion is exact.
#[inline]
pub(crate) fn count_f64(n: usize) -> f64 {
    // Exact for every n < 2^53.
    n as f64
}

/// Converts a count to `f64`; exact below 2^53, far beyond any count liftlab keeps.
#[inline]
pub(crate) fn count_f64_u64(n: u64) -> f64 {
    // Exact for every n < 2^53.
    n as f64
}
