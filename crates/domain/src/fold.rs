//! Folding one outcome into its unit's row and into the arm's sufficient statistics, as deltas the store applies.
//!
//! An analysis population is one value per unit and metric: the unit's events combined by
//! the metric's aggregate (sum, mean, last or max). When a new event changes a unit's value,
//! the arm's accumulator must lose the old value and gain the new one; [`fold`] returns
//! exactly those changes as [`AggDelta`]s, so a report never rescans raw events. Folding the
//! same events in the same order from scratch reproduces the same rows and aggregates, which
//! is how the store rebuilds everything from its outcome log.

use crate::model::{AggDelta, AggKey, AggScope, Assignment, MetricCell, Millis, Outcome, UnitRow};
use crate::spec::{Aggregate, ExperimentSpec};

/// Milliseconds in a UTC day.
pub const MS_PER_DAY: Millis = 86_400_000;

/// Milliseconds in an hour.
pub const MS_PER_HOUR: Millis = 3_600_000;

/// The UTC day (days since the Unix epoch) of a timestamp; negative before 1970.
pub fn day_of(ts: Millis) -> i64 {
    ts.div_euclid(MS_PER_DAY)
}

/// The UTC hour (hours since the Unix epoch) of a timestamp; negative before 1970.
pub fn hour_of(ts: Millis) -> i64 {
    ts.div_euclid(MS_PER_HOUR)
}

/// The result of folding one outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Folded {
    /// The unit's row after the outcome.
    pub row: UnitRow,
    /// The aggregate changes to apply, in a deterministic order.
    pub deltas: Vec<AggDelta>,
    /// True when the unit had no row before (its first outcome in this epoch).
    pub new_unit: bool,
}

/// Combines one more event value into a unit's cell by the metric's aggregate.
pub fn fold_cell(old: Option<MetricCell>, value: f64, aggregate: Aggregate) -> MetricCell {
    let (count, sum) = match old {
        Some(c) => (c.count + 1, c.sum + value),
        None => (1, value),
    };
    let value = match (aggregate, old) {
        (Aggregate::Sum, _) => sum,
        (Aggregate::Mean, _) => sum / crate::count_f64_u64(count),
        (Aggregate::Last, _) | (Aggregate::Max, None) => value,
        (Aggregate::Max, Some(c)) => c.value.max(value),
    };
    MetricCell { value, count, sum }
}

/// Folds `outcome` into the unit's `row` (`None` for the unit's first outcome in the epoch).
///
/// The row is keyed by (experiment, `outcome.epoch`, unit); a new row takes the arm,
/// propensity and kept attributes (segments and covariates) of `assignment`. Every event value
/// is first cut to its metric's cap. For every metric in the outcome that the spec declares
/// (others, and ratio metrics, which outcomes never carry, are skipped; the caller validated
/// them), the unit's cell is updated by the metric's aggregate and these deltas are produced:
/// - `Overall`, `Period(assignment.period)` (the allocation period that placed the unit, for
///   estimates stratified by period) and one `Segment` per declared segment attribute the
///   unit has a value for, with `old` the unit's previous value (`None` the first time) and
///   `new` its new value; omitted when the value did not change (for example `max` with a
///   smaller event);
/// - for a metric with a covariate, when its value changes: `Paired` with the unit's
///   covariate y when the unit first enters (y never changes afterwards), and `PairSum`
///   with x + y (old: the previous x + y);
/// - `Day(day_of(ts))` with the (capped) event value and `old: None` (every event counts);
/// - for the primary metric only, `Hour(hour_of(ts))` likewise, so that a short history can
///   be charted by the hour without an hourly accumulator for every metric.
///
/// Then, for every ratio metric whose numerator or denominator cell changed, the unit's pair
/// (x, y) = (numerator value or 0, denominator value or 0) moves: `Overall` (x), `Paired` (y)
/// and `PairSum` (x + y) under the ratio's key, and the same three for the unit's allocation
/// period (`Period`, `PeriodPaired`, `PeriodPairSum`, for the estimate stratified by period),
/// with `old` the previous pair's (`None` when the unit had neither part before); a part that
/// did not change is omitted. Ratio metrics get no `Segment` or `Day` deltas: a segment's
/// ratio needs its own pair sums, which no report asks for yet.
///
/// An assignment with `in_experiment: false` is outside the analysis population: its row is
/// kept (for completeness and audits) but no deltas are produced.
pub fn fold(
    spec: &ExperimentSpec,
    assignment: &Assignment,
    row: Option<UnitRow>,
    outcome: &Outcome,
) -> Folded {
    let new_unit = row.is_none();
    let mut row = row.unwrap_or_else(|| UnitRow {
        experiment: assignment.experiment.clone(),
        epoch: outcome.epoch,
        unit_id: assignment.unit_id.clone(),
        arm: assignment.arm.clone(),
        propensity: assignment.propensity,
        segments: assignment.segments.clone(),
        metrics: Default::default(),
        handled_by: Default::default(),
        outcomes: 0,
        first_ts: outcome.ts,
        last_ts: outcome.ts,
    });
    row.outcomes += 1;
    row.first_ts = row.first_ts.min(outcome.ts);
    row.last_ts = row.last_ts.max(outcome.ts);
    if let Some(by) = outcome.handled_by {
        *row.handled_by.entry(by).or_insert(0) += 1;
    }

    let mut deltas = Vec::new();
    // The value before this outcome of every metric whose value it changed, kept only when a
    // ratio needs it (so the common path allocates nothing more).
    let has_ratios = spec.metrics().iter().any(|m| m.ratio().is_some());
    let mut previous: Vec<(&str, Option<f64>)> = Vec::new();
    let day = day_of(outcome.ts);
    let primary = spec.primary().key();
    for (key, &reported) in &outcome.metrics {
        let Some(metric) = spec.metric(key) else {
            continue;
        };
        if !reported.is_finite() || metric.ratio().is_some() {
            continue;
        }
        let value = metric.capped(reported);
        let old = row.metrics.get(key).copied();
        let cell = fold_cell(old, value, metric.aggregate());
        row.metrics.insert(key.clone(), cell);
        if !assignment.in_experiment {
            continue;
        }
        let mut out = Deltas::new(&row, key, &mut deltas);
        let old_value = old.map(|c| c.value);
        if old_value != Some(cell.value) {
            if has_ratios {
                previous.push((key.as_str(), old_value));
            }
            out.push(AggScope::Overall, old_value, cell.value);
            out.push(AggScope::Period(assignment.period), old_value, cell.value);
            for attribute in spec.segments() {
                if let Some(v) = row.segments.get(attribute) {
                    let scope = AggScope::Segment {
                        attribute: attribute.clone(),
                        value: v.clone(),
                    };
                    out.push(scope, old_value, cell.value);
                }
            }
            if let Some(attribute) = metric.covariate() {
                let y = covariate(&row.segments, attribute);
                if old_value.is_none() {
                    out.push(AggScope::Paired, None, y);
                }
                out.push(AggScope::PairSum, old_value.map(|x| x + y), cell.value + y);
            }
        }
        out.push(AggScope::Day(day), None, value);
        if key == primary {
            out.push(AggScope::Hour(hour_of(outcome.ts)), None, value);
        }
    }
    if assignment.in_experiment && !previous.is_empty() {
        fold_ratios(spec, &row, assignment.period, &previous, &mut deltas);
    }
    Folded {
        row,
        deltas,
        new_unit,
    }
}

/// The ratio deltas of one outcome, given the values its metrics had before it (see [`fold`]).
fn fold_ratios(
    spec: &ExperimentSpec,
    row: &UnitRow,
    period: u64,
    previous: &[(&str, Option<f64>)],
    deltas: &mut Vec<AggDelta>,
) {
    let now = |key: &str| row.metrics.get(key).map(|c| c.value);
    let before = |key: &str| match previous.iter().find(|(k, _)| *k == key) {
        Some(&(_, old)) => old,
        None => now(key),
    };
    for metric in spec.metrics() {
        let Some(ratio) = metric.ratio() else {
            continue;
        };
        let (numerator, denominator) = (ratio.numerator(), ratio.denominator());
        let old = (before(numerator), before(denominator));
        let new = (now(numerator), now(denominator));
        if old == new {
            continue;
        }
        let old = (old.0.is_some() || old.1.is_some())
            .then(|| (old.0.unwrap_or(0.0), old.1.unwrap_or(0.0)));
        let (x, y) = (new.0.unwrap_or(0.0), new.1.unwrap_or(0.0));
        let mut out = Deltas::new(row, metric.key(), deltas);
        out.push_changed(AggScope::Overall, old.map(|p| p.0), x);
        out.push_changed(AggScope::Paired, old.map(|p| p.1), y);
        out.push_changed(AggScope::PairSum, old.map(|p| p.0 + p.1), x + y);
        out.push_changed(AggScope::Period(period), old.map(|p| p.0), x);
        out.push_changed(AggScope::PeriodPaired(period), old.map(|p| p.1), y);
        out.push_changed(
            AggScope::PeriodPairSum(period),
            old.map(|p| p.0 + p.1),
            x + y,
        );
    }
}

/// A unit's covariate: the kept attribute's number, or 0 when the unit was assigned without it.
///
/// Any value fixed before treatment is a valid covariate, so counting a missing one as 0
/// keeps the estimate unbiased; assignment rejected values that are not numbers.
fn covariate(attributes: &std::collections::BTreeMap<String, String>, attribute: &str) -> f64 {
    attributes
        .get(attribute)
        .and_then(|v| crate::assign::covariate_number(v))
        .unwrap_or(0.0)
}

/// Builds the deltas of one metric of one unit.
struct Deltas<'a> {
    epoch: u64,
    arm: &'a str,
    metric: &'a str,
    propensity: f64,
    out: &'a mut Vec<AggDelta>,
}

impl<'a> Deltas<'a> {
    fn new(row: &'a UnitRow, metric: &'a str, out: &'a mut Vec<AggDelta>) -> Self {
        Self {
            epoch: row.epoch,
            arm: &row.arm,
            metric,
            propensity: row.propensity,
            out,
        }
    }

    fn push(&mut self, scope: AggScope, old: Option<f64>, new: f64) {
        self.out.push(AggDelta {
            key: AggKey {
                epoch: self.epoch,
                arm: self.arm.to_string(),
                metric: self.metric.to_string(),
                scope,
            },
            old,
            new,
            propensity: self.propensity,
        });
    }

    /// Pushes the delta unless the unit's value stays the same.
    fn push_changed(&mut self, scope: AggScope, old: Option<f64>, new: f64) {
        if old != Some(new) {
            self.push(scope, old, new);
        }
    }
}

#[cfg(test)]
mod tests;
