//! Tests of the timeline: when it is hourly rather than daily, and the points it gives for each.

use liftlab_stats::Moments;
use serde_json::json;

use super::*;

fn spec() -> ExperimentSpec {
    ExperimentSpec::parse(&json!({
        "key": "tl",
        "arms": [{"key": "human", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai": 0.5}},
        "metrics": [
            {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary"},
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary"}
        ]
    }))
    .expect("valid")
}

/// One aggregate of epoch 0 holding `values`.
fn agg(arm: &str, metric: &str, scope: AggScope, values: &[f64]) -> (AggKey, MetricAggregate) {
    let mut moments = Moments::new();
    for x in values {
        moments.push(*x);
    }
    let key = AggKey {
        epoch: 0,
        arm: arm.into(),
        metric: metric.into(),
        scope,
    };
    let aggregate = MetricAggregate {
        moments,
        ..MetricAggregate::default()
    };
    (key, aggregate)
}

/// 2026-12-03, days since the Unix epoch.
const DAY: i64 = 20_790;
/// Its first hour, hours since the Unix epoch.
const HOUR: i64 = DAY * 24;

#[test]
fn short_histories_are_hourly_and_long_or_partial_ones_daily() {
    let check = |day_events: u64, hours: &[(i64, u64)], expect: Bucket| {
        assert_eq!(
            bucket_for(day_events, hours.iter().copied()),
            expect,
            "{day_events} events by day, {hours:?} by hour"
        );
    };
    check(0, &[], Bucket::Day);
    check(5, &[(HOUR + 9, 5)], Bucket::Hour);
    check(5, &[(HOUR + 9, 2), (HOUR + 13, 3)], Bucket::Hour);
    check(
        2,
        &[(HOUR, 1), (HOUR + HOURLY_SPAN_HOURS - 1, 1)],
        Bucket::Hour,
    );
    check(2, &[(HOUR + HOURLY_SPAN_HOURS, 1), (HOUR, 1)], Bucket::Day);
    // Days hold events that no hour holds: folded before hourly buckets existed.
    check(7, &[(HOUR + 9, 5)], Bucket::Day);
    check(5, &[], Bucket::Day);
}

#[test]
fn a_day_of_data_is_charted_by_the_hour() {
    let spec = spec();
    let aggregates = vec![
        agg("ai", "minutes", AggScope::Day(DAY), &[20.0, 22.0, 30.0]),
        agg("ai", "minutes", AggScope::Hour(HOUR + 14), &[30.0]),
        agg("ai", "minutes", AggScope::Hour(HOUR + 9), &[20.0, 22.0]),
        agg("human", "minutes", AggScope::Day(DAY), &[31.0]),
        agg("human", "minutes", AggScope::Hour(HOUR + 9), &[31.0]),
        agg("human", "cost", AggScope::Day(DAY), &[4.0]),
        agg("human", "minutes", AggScope::Overall, &[31.0]),
    ];
    let points = timeline(&spec, 0, &aggregates);
    let got: Vec<(Bucket, &str, i64, &str, &str, u64, f64)> = points
        .iter()
        .map(|p| {
            (
                p.bucket,
                p.start.as_str(),
                p.day,
                p.date.as_str(),
                p.arm.as_str(),
                p.n,
                p.mean,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                Bucket::Hour,
                "2026-12-03T09:00:00Z",
                DAY,
                "2026-12-03",
                "human",
                1,
                31.0
            ),
            (
                Bucket::Hour,
                "2026-12-03T09:00:00Z",
                DAY,
                "2026-12-03",
                "ai",
                2,
                21.0
            ),
            (
                Bucket::Hour,
                "2026-12-03T14:00:00Z",
                DAY,
                "2026-12-03",
                "ai",
                1,
                30.0
            ),
        ]
    );
    assert_eq!(points[0].start_ms, (HOUR + 9) * 3_600_000);
    let json = serde_json::to_value(&points[0]).expect("serializes");
    assert_eq!(json["bucket"], "hour");
}

#[test]
fn a_long_history_is_charted_by_the_day() {
    let spec = spec();
    let aggregates = vec![
        agg("ai", "minutes", AggScope::Day(DAY), &[20.0]),
        agg("ai", "minutes", AggScope::Day(DAY + 4), &[24.0]),
        agg("ai", "minutes", AggScope::Hour(HOUR + 1), &[20.0]),
        agg("ai", "minutes", AggScope::Hour(HOUR + 4 * 24), &[24.0]),
    ];
    let points = timeline(&spec, 0, &aggregates);
    let got: Vec<(Bucket, &str, &str, i64)> = points
        .iter()
        .map(|p| (p.bucket, p.start.as_str(), p.date.as_str(), p.start_ms))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                Bucket::Day,
                "2026-12-03T00:00:00Z",
                "2026-12-03",
                DAY * 86_400_000
            ),
            (
                Bucket::Day,
                "2026-12-07T00:00:00Z",
                "2026-12-07",
                (DAY + 4) * 86_400_000
            ),
        ]
    );
    assert!(timeline(&spec, 1, &aggregates).is_empty(), "another epoch");
}
