//! The primary metric per arm over time, from the `AggScope::Hour` or `AggScope::Day` buckets of one epoch.

use serde::{Deserialize, Serialize};

use super::text::{format_day, format_ts};
use super::types::TimelinePoint;
use crate::fold::{MS_PER_DAY, MS_PER_HOUR};
use crate::model::{AggKey, AggScope, MetricAggregate};
use crate::spec::ExperimentSpec;

/// An epoch whose data spans fewer hours than this (three days) is charted by the hour.
///
/// The span is from the first hour with data to the last, so hourly charts have at most this
/// many points per arm; longer histories are charted by the day.
pub const HOURLY_SPAN_HOURS: i64 = 72;

/// How long a timeline point's bucket is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// A UTC hour (`AggScope::Hour`).
    Hour,
    /// A UTC day (`AggScope::Day`).
    Day,
}

/// The primary metric's mean per arm and bucket in `epoch`, ordered by time and then by the
/// spec's arm order, by the hour or by the day as `bucket_for` chooses.
///
/// The page calls it once per epoch to draw the whole history with its epoch boundaries.
pub fn timeline(
    spec: &ExperimentSpec,
    epoch: u64,
    aggregates: &[(AggKey, MetricAggregate)],
) -> Vec<TimelinePoint> {
    let primary = spec.primary().key();
    let of_primary = || {
        aggregates
            .iter()
            .filter(move |(k, a)| k.epoch == epoch && k.metric == primary && a.moments.n() > 0)
    };
    let days = of_primary().filter_map(|(k, a)| match k.scope {
        AggScope::Day(_) => Some(a.moments.n()),
        _ => None,
    });
    let hours = of_primary().filter_map(|(k, a)| match k.scope {
        AggScope::Hour(hour) => Some((hour, a.moments.n())),
        _ => None,
    });
    let bucket = bucket_for(days.sum(), hours);
    let mut points: Vec<(i64, usize, TimelinePoint)> = of_primary()
        .filter_map(|(k, a)| {
            let start_ms = match (bucket, &k.scope) {
                (Bucket::Day, AggScope::Day(day)) => day.checked_mul(MS_PER_DAY)?,
                (Bucket::Hour, AggScope::Hour(hour)) => hour.checked_mul(MS_PER_HOUR)?,
                _ => return None,
            };
            let order = spec.arm_index(&k.arm)?;
            let day = start_ms.div_euclid(MS_PER_DAY);
            Some((
                start_ms,
                order,
                TimelinePoint {
                    epoch,
                    bucket,
                    start: format_ts(start_ms),
                    start_ms,
                    day,
                    date: format_day(day),
                    arm: k.arm.clone(),
                    n: a.moments.n(),
                    mean: a.moments.mean(),
                },
            ))
        })
        .collect();
    points.sort_by_key(|(start, order, _)| (*start, *order));
    points.into_iter().map(|(_, _, p)| p).collect()
}

/// Hours when the epoch's hourly buckets hold every event its daily buckets hold and span less
/// than [`HOURLY_SPAN_HOURS`]; days otherwise.
///
/// `day_events` is the number of events in the daily buckets; `hours` gives each non-empty
/// hourly bucket with its events. Data folded before hourly buckets existed is in days only,
/// so its hours fall short of its days and it stays daily rather than charted in part.
pub(crate) fn bucket_for(day_events: u64, hours: impl IntoIterator<Item = (i64, u64)>) -> Bucket {
    let mut span: Option<(i64, i64)> = None;
    let mut hour_events = 0u64;
    for (hour, n) in hours {
        hour_events = hour_events.saturating_add(n);
        span = Some(span.map_or((hour, hour), |(lo, hi)| (lo.min(hour), hi.max(hour))));
    }
    match span {
        Some((first, last))
            if hour_events == day_events && last.saturating_sub(first) < HOURLY_SPAN_HOURS =>
        {
            Bucket::Hour
        }
        _ => Bucket::Day,
    }
}

#[cfg(test)]
mod tests;
