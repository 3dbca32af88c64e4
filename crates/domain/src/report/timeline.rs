//! The primary metric per arm and UTC day, from the `AggScope::Day` buckets of one epoch.

use super::text::format_day;
use super::types::TimelinePoint;
use crate::model::{AggKey, AggScope, MetricAggregate};
use crate::spec::ExperimentSpec;

/// The primary metric's daily mean per arm in `epoch`, ordered by day and then by the spec's arm order.
///
/// The page calls it once per epoch to draw the whole history with its epoch boundaries.
pub fn timeline(
    spec: &ExperimentSpec,
    epoch: u64,
    aggregates: &[(AggKey, MetricAggregate)],
) -> Vec<TimelinePoint> {
    let primary = spec.primary().key();
    let mut points: Vec<(i64, usize, TimelinePoint)> = aggregates
        .iter()
        .filter(|(k, a)| k.epoch == epoch && k.metric == primary && a.moments.n() > 0)
        .filter_map(|(k, a)| {
            let AggScope::Day(day) = k.scope else {
                return None;
            };
            let order = spec.arm_index(&k.arm)?;
            Some((
                day,
                order,
                TimelinePoint {
                    epoch,
                    day,
                    date: format_day(day),
                    arm: k.arm.clone(),
                    n: a.moments.n(),
                    mean: a.moments.mean(),
                },
            ))
        })
        .collect();
    points.sort_by_key(|(day, order, _)| (*day, *order));
    points.into_iter().map(|(_, _, p)| p).collect()
}
