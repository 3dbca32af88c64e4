//! The records every layer shares: lifecycle status, assignments, outcomes, unit rows, aggregates, allocation periods.
//!
//! These types are the contract between liftlab-domain (which computes them), liftlab-store
//! (which persists them inside its own versioned envelopes) and liftlab-server (which maps
//! them to the HTTP DTOs of api-spec/). Times are Unix milliseconds (`i64`), given by callers.

use std::collections::BTreeMap;

use liftlab_stats::{CoMoments, Moments};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, always supplied by the caller (the domain has no clock).
pub type Millis = i64;

/// Where an experiment is in its life: draft → running ⇄ paused → stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    Running,
    Paused,
    Stopped,
}

impl Status {
    /// The status as it appears in JSON (`draft`, `running`, `paused`, `stopped`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who handled a task, as reported with its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandledBy {
    Ai,
    Human,
    Hybrid,
}

/// The weights that were in force for one allocation period of an experiment.
///
/// A fixed policy has a single period 0 holding the spec's weights; a Thompson policy opens a
/// new period at every recomputation. Units are hashed into the current period's weights, so
/// every assignment knows its exact propensity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocationPeriod {
    pub experiment: String,
    /// 0 for the first period; increases by one per recomputation.
    pub period: u64,
    /// Weight per arm key, in the spec's arm order; sums to 1.
    pub weights: Vec<(String, f64)>,
    pub opened_at: Millis,
    /// Rewards folded into the posterior when this period was opened.
    pub rewards_seen: u64,
}

/// A unit's placement in an experiment, stored once and served again to a returning unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub experiment: String,
    pub unit_id: String,
    /// The correlation id outcomes refer to (defaults to the unit id).
    pub task_id: String,
    pub arm: String,
    pub in_experiment: bool,
    /// The spec version in force when the unit was assigned.
    pub version: u64,
    pub assignment_id: String,
    /// Probability with which this unit was placed in `arm` (1.0 when not in the experiment).
    pub propensity: f64,
    /// The allocation period whose weights placed the unit.
    pub period: u64,
    /// The analysis epoch the unit was assigned in.
    pub epoch: u64,
    /// The attribute values the analysis needs later, as sent at assignment: those of the
    /// spec's declared segment attributes (for breakdowns) and of its metrics' covariate
    /// attributes (for CUPED; a number, kept as text that parses back as `f64`). The name
    /// stays `segments` so that stored assignments keep decoding.
    pub segments: BTreeMap<String, String>,
    pub assigned_at: Millis,
}

/// One metric value as reported: binary values are stored as 0.0/1.0.
pub type MetricValues = BTreeMap<String, f64>;

/// A validated outcome event, already resolved against its stored assignment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The client's idempotency key.
    pub event_id: String,
    pub experiment: String,
    pub task_id: String,
    /// The unit the task belongs to (from the assignment, never from the client).
    pub unit_id: String,
    /// The arm really served (from the assignment, never from the client).
    pub arm: String,
    pub epoch: u64,
    pub ts: Millis,
    pub metrics: MetricValues,
    pub handled_by: Option<HandledBy>,
    pub model_version: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

/// How far ahead of the receiving clock an outcome's `ts` may lie: five minutes, so that
/// clocks that disagree a little still agree, while an outcome stamped in the future (which
/// would put data past "now" in every chart and drift window) is refused.
pub const MAX_OUTCOME_LEAD: Millis = 5 * 60_000;

/// Checks an outcome's time `ts` against `received`, the receiving clock's time (the domain
/// has no clock): `ts` may lie at most [`MAX_OUTCOME_LEAD`] after it. The error reads after
/// the field's pointer (`/ts`): "… is 61 minutes in the future; …".
pub fn check_outcome_ts(ts: Millis, received: Millis) -> Result<(), String> {
    let lead = ts.saturating_sub(received);
    if lead <= MAX_OUTCOME_LEAD {
        return Ok(());
    }
    // Whole minutes, rounded up, so that a lead just past the limit never reads as the limit.
    let minutes = lead.saturating_add(59_999) / 60_000;
    Err(format!(
        "{} is {minutes} minutes in the future; an outcome's ts may be at most {} minutes after the server's clock ({}), so send the time the outcome happened, or none for the time of receipt",
        crate::report::format_ts(ts),
        MAX_OUTCOME_LEAD / 60_000,
        crate::report::format_ts(received),
    ))
}

/// One metric of one unit, folded over that unit's outcomes by the metric's aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricCell {
    /// The unit's current value for the metric (what the arm's accumulator holds for this unit).
    pub value: f64,
    /// Observations folded in so far.
    pub count: u64,
    /// Running sum of observations, so that `mean` can be kept exactly.
    pub sum: f64,
}

/// Everything the analysis keeps about one unit in one epoch: its arm and per-metric values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitRow {
    pub experiment: String,
    pub epoch: u64,
    pub unit_id: String,
    pub arm: String,
    /// The propensity of the unit's assignment, for inverse-propensity estimates.
    pub propensity: f64,
    /// The assignment's kept attributes (segments and covariates), see [`Assignment::segments`].
    pub segments: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, MetricCell>,
    /// Outcomes counted for this unit, by who handled them.
    pub handled_by: BTreeMap<HandledBy, u64>,
    pub outcomes: u64,
    pub first_ts: Millis,
    pub last_ts: Millis,
}

/// Which accumulator an aggregate is: an arm's metric overall, within a segment, within a day,
/// within an hour (the primary metric only), or the second half of a paired metric.
///
/// A *paired* metric has a second per-unit variable y beside its value x: a metric with a
/// covariate pairs x with the unit's covariate, a ratio metric pairs its numerator's unit
/// value x with its denominator's y. For such a metric `Overall` holds x, `Paired` holds y and
/// `PairSum` holds x + y over the same units, so the arm's co-moment follows exactly as
/// c_xy = (M2(x+y) − M2(x) − M2(y))/2 (see [`co_moments`]). Variants are only ever added at
/// the end: stores encode the variant's position.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AggScope {
    /// Per-unit values of the arm (the analysis population); x for a paired metric.
    Overall,
    /// Per-unit values of the arm's units whose segment attribute has this value.
    Segment { attribute: String, value: String },
    /// Event values (after the metric's cap) received on this UTC day (days since the epoch),
    /// for trends and drift.
    Day(i64),
    /// Per unit, the second variable y of a paired metric: the covariate value for a metric
    /// with a covariate, the denominator's unit value for a ratio metric.
    Paired,
    /// Per unit, x + y of a paired metric.
    PairSum,
    /// Raw event values of the primary metric only, received in this UTC hour (hours since
    /// the Unix epoch), for the over-time chart when the data spans too short a time for days.
    Hour(i64),
    /// Per-unit values (x for a paired metric) of the arm's units assigned in this allocation
    /// period ([`Assignment::period`]), for estimates stratified by period.
    Period(u64),
    /// [`AggScope::Paired`] of the units assigned in this allocation period: a ratio metric's
    /// denominator, for its estimate stratified by period.
    PeriodPaired(u64),
    /// [`AggScope::PairSum`] of the units assigned in this allocation period.
    PeriodPairSum(u64),
}

/// The key of an aggregate within one experiment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AggKey {
    pub epoch: u64,
    pub arm: String,
    pub metric: String,
    pub scope: AggScope,
}

/// Sufficient statistics of one metric for one arm (and scope).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricAggregate {
    pub moments: Moments,
    /// Σ 1/p over units, for the Hájek (self-normalized inverse-propensity) mean.
    pub ipw_weight: f64,
    /// Σ y/p over units.
    pub ipw_weighted_sum: f64,
}

/// The co-moments of an arm's (x, y) pairs from its `Overall` (x), `Paired` (y) and `PairSum`
/// (x + y) moments: c_xy = (M2(x+y) − M2(x) − M2(y))/2, with each mean and M2 kept as
/// accumulated.
///
/// The three accumulators hold the same units, so their counts agree; when they do not (a
/// store that lost part of an outcome's deltas), the result is empty rather than a wrong
/// covariance, and the comparison has no data.
pub fn co_moments(x: &Moments, y: &Moments, sum: &Moments) -> CoMoments {
    if sum.n() != x.n() {
        return CoMoments::default();
    }
    let c_xy = (sum.m2() - x.m2() - y.m2()) / 2.0;
    CoMoments::from_moments(x, y, c_xy).unwrap_or_default()
}

/// A change to one aggregate caused by folding one outcome: remove `old` (if any), add `new`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggDelta {
    pub key: AggKey,
    pub old: Option<f64>,
    pub new: f64,
    /// The unit's propensity, for the inverse-propensity sums.
    pub propensity: f64,
}

impl MetricAggregate {
    /// Applies a delta: the unit's old value leaves the accumulator and its new value enters.
    ///
    /// A delta whose `old` value cannot be removed because the accumulator is empty (it was
    /// applied to the wrong accumulator, or out of order) is applied as a first value instead;
    /// [`MetricAggregate::try_apply`] reports that case as an error.
    pub fn apply(&mut self, delta: &AggDelta) {
        if self.try_apply(delta).is_err() {
            self.apply_new(delta.new, delta.propensity);
        }
    }

    /// Applies a delta, or fails without changing anything when `old` is given but the
    /// accumulator is empty.
    pub fn try_apply(&mut self, delta: &AggDelta) -> Result<(), crate::DomainError> {
        match delta.old {
            Some(old) => {
                self.moments
                    .remove(old)
                    .map_err(|_| crate::DomainError::RemoveFromEmpty {
                        key: format!("{:?}", delta.key),
                    })?;
                let w = 1.0 / delta.propensity;
                self.ipw_weighted_sum += w * (delta.new - old);
                self.moments.push(delta.new);
            }
            None => self.apply_new(delta.new, delta.propensity),
        }
        Ok(())
    }

    fn apply_new(&mut self, value: f64, propensity: f64) {
        let w = 1.0 / propensity;
        self.ipw_weight += w;
        self.ipw_weighted_sum += w * value;
        self.moments.push(value);
    }
}

#[cfg(test)]
mod tests;
