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
/// propensity and segment values of `assignment`. For every metric in the outcome that the
/// spec declares (others are skipped; the caller validated them), the unit's cell is updated
/// by the metric's aggregate and these deltas are produced:
/// - `Overall` and one `Segment` per declared segment attribute the unit has a value for,
///   with `old` the unit's previous value (`None` the first time) and `new` its new value;
///   omitted when the value did not change (for example `max` with a smaller event);
/// - `Day(day_of(ts))` with the raw event value and `old: None` (every event counts);
/// - for the primary metric only, `Hour(hour_of(ts))` likewise, so that a short history can
///   be charted by the hour without an hourly accumulator for every metric.
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
    let day = day_of(outcome.ts);
    let primary = spec.primary().key();
    for (key, &value) in &outcome.metrics {
        let Some(metric) = spec.metric(key) else {
            continue;
        };
        if !value.is_finite() {
            continue;
        }
        let old = row.metrics.get(key).copied();
        let cell = fold_cell(old, value, metric.aggregate());
        row.metrics.insert(key.clone(), cell);
        if !assignment.in_experiment {
            continue;
        }
        let delta = |scope: AggScope, old: Option<f64>, new: f64| AggDelta {
            key: AggKey {
                epoch: row.epoch,
                arm: row.arm.clone(),
                metric: key.clone(),
                scope,
            },
            old,
            new,
            propensity: row.propensity,
        };
        let old_value = old.map(|c| c.value);
        if old_value != Some(cell.value) {
            deltas.push(delta(AggScope::Overall, old_value, cell.value));
            for attribute in spec.segments() {
                if let Some(v) = row.segments.get(attribute) {
                    deltas.push(delta(
                        AggScope::Segment {
                            attribute: attribute.clone(),
                            value: v.clone(),
                        },
                        old_value,
                        cell.value,
                    ));
                }
            }
        }
        deltas.push(delta(AggScope::Day(day), None, value));
        if key == primary {
            deltas.push(delta(AggScope::Hour(hour_of(outcome.ts)), None, value));
        }
    }
    Folded {
        row,
        deltas,
        new_unit,
    }
}

#[cfg(test)]
mod tests;
