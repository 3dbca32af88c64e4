//! Tests of folding: per-aggregate cell semantics, the deltas produced, and rebuild equivalence on random event streams.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::model::{co_moments, HandledBy, MetricAggregate};

fn spec() -> ExperimentSpec {
    ExperimentSpec::parse(&json!({
        "key": "exp",
        "arms": [{"key": "human", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"human": 0.4, "ai": 0.6}},
        "metrics": [
            {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary"},
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary"},
            {"key": "score", "kind": "continuous", "direction": "increase", "role": "secondary", "aggregate": "last"},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail", "aggregate": "max"}
        ],
        "segments": ["channel", "priority"]
    }))
    .expect("valid")
}

fn assignment(unit: &str, arm: &str, propensity: f64, segments: &[(&str, &str)]) -> Assignment {
    Assignment {
        experiment: "exp".into(),
        unit_id: unit.into(),
        task_id: unit.into(),
        arm: arm.into(),
        in_experiment: true,
        version: 1,
        assignment_id: format!("as-{unit}"),
        propensity,
        period: 0,
        epoch: 0,
        segments: segments
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        assigned_at: 0,
    }
}

fn outcome(a: &Assignment, event: &str, ts: Millis, metrics: &[(&str, f64)]) -> Outcome {
    Outcome {
        event_id: event.into(),
        experiment: a.experiment.clone(),
        task_id: a.task_id.clone(),
        unit_id: a.unit_id.clone(),
        arm: a.arm.clone(),
        epoch: 0,
        ts,
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        handled_by: Some(HandledBy::Ai),
        model_version: None,
        attributes: BTreeMap::new(),
    }
}

fn key(metric: &str, scope: AggScope) -> AggKey {
    AggKey {
        epoch: 0,
        arm: "ai".into(),
        metric: metric.into(),
        scope,
    }
}

#[test]
fn the_first_outcome_creates_the_row_and_enters_every_scope() {
    let spec = spec();
    let a = assignment("u1", "ai", 0.6, &[("channel", "email")]);
    let ts = 3 * MS_PER_DAY + 5;
    let folded = fold(
        &spec,
        &a,
        None,
        &outcome(&a, "e1", ts, &[("minutes", 12.0)]),
    );
    assert!(folded.new_unit);
    assert_eq!(folded.row.outcomes, 1);
    assert_eq!((folded.row.first_ts, folded.row.last_ts), (ts, ts));
    assert_eq!(folded.row.handled_by.get(&HandledBy::Ai), Some(&1));
    assert_eq!(folded.row.propensity, 0.6);
    let d = |scope, old, new| AggDelta {
        key: key("minutes", scope),
        old,
        new,
        propensity: 0.6,
    };
    let segment = AggScope::Segment {
        attribute: "channel".into(),
        value: "email".into(),
    };
    assert_eq!(
        folded.deltas,
        vec![
            d(AggScope::Overall, None, 12.0),
            d(AggScope::Period(0), None, 12.0),
            d(segment, None, 12.0),
            d(AggScope::Day(3), None, 12.0),
            d(AggScope::Hour(72), None, 12.0),
        ]
    );
}

#[test]
fn only_the_primary_metric_is_folded_by_the_hour() {
    let spec = spec();
    let a = assignment("u1", "ai", 0.6, &[]);
    let ts = 2 * MS_PER_HOUR + 1;
    let metrics = [("minutes", 12.0), ("cost", 2.0), ("escalated", 1.0)];
    let folded = fold(&spec, &a, None, &outcome(&a, "e1", ts, &metrics));
    let hourly: Vec<(&str, &AggScope, f64)> = folded
        .deltas
        .iter()
        .filter(|d| matches!(d.key.scope, AggScope::Hour(_)))
        .map(|d| (d.key.metric.as_str(), &d.key.scope, d.new))
        .collect();
    assert_eq!(hourly, vec![("minutes", &AggScope::Hour(2), 12.0)]);
    let daily = folded
        .deltas
        .iter()
        .filter(|d| matches!(d.key.scope, AggScope::Day(_)))
        .count();
    assert_eq!(daily, 3, "every metric is still folded by the day");
}

#[test]
fn later_outcomes_replace_the_units_value() {
    let spec = spec();
    let a = assignment("u1", "ai", 0.6, &[]);
    let first = fold(
        &spec,
        &a,
        None,
        &outcome(&a, "e1", 100, &[("minutes", 10.0), ("cost", 2.0)]),
    );
    let second = fold(
        &spec,
        &a,
        Some(first.row),
        &outcome(&a, "e2", 50, &[("minutes", 20.0), ("cost", 3.0)]),
    );
    assert!(!second.new_unit);
    assert_eq!(
        (second.row.first_ts, second.row.last_ts, second.row.outcomes),
        (50, 100, 2)
    );
    let overall: Vec<(&str, Option<f64>, f64)> = second
        .deltas
        .iter()
        .filter(|d| d.key.scope == AggScope::Overall)
        .map(|d| (d.key.metric.as_str(), d.old, d.new))
        .collect();
    // cost sums (2 + 3), minutes averages (10, 20 → 15).
    assert_eq!(
        overall,
        vec![("cost", Some(2.0), 5.0), ("minutes", Some(10.0), 15.0)]
    );
    let cell = second.row.metrics["minutes"];
    assert_eq!((cell.value, cell.count, cell.sum), (15.0, 2, 30.0));
}

#[test]
fn cells_follow_their_aggregate() {
    let events = [4.0, 9.0, 1.0];
    let expected = [
        (Aggregate::Sum, [4.0, 13.0, 14.0]),
        (Aggregate::Mean, [4.0, 6.5, 14.0 / 3.0]),
        (Aggregate::Last, [4.0, 9.0, 1.0]),
        (Aggregate::Max, [4.0, 9.0, 9.0]),
    ];
    for (aggregate, values) in expected {
        let mut cell = None;
        for (x, want) in events.iter().zip(values) {
            let next = fold_cell(cell, *x, aggregate);
            assert!(
                (next.value - want).abs() < 1e-12,
                "{aggregate:?}: {next:?} vs {want}"
            );
            cell = Some(next);
        }
        assert_eq!(cell.map(|c| (c.count, c.sum)), Some((3, 14.0)));
    }
}

#[test]
fn an_unchanged_value_produces_only_the_day_delta() {
    let spec = spec();
    let a = assignment("u1", "ai", 0.6, &[]);
    let first = fold(
        &spec,
        &a,
        None,
        &outcome(&a, "e1", 0, &[("escalated", 1.0)]),
    );
    let second = fold(
        &spec,
        &a,
        Some(first.row),
        &outcome(&a, "e2", 0, &[("escalated", 0.0)]),
    );
    assert_eq!(second.deltas.len(), 1);
    assert_eq!(second.deltas[0].key.scope, AggScope::Day(0));
    assert_eq!((second.deltas[0].old, second.deltas[0].new), (None, 0.0));
}

#[test]
fn out_of_experiment_units_and_unknown_metrics_add_nothing() {
    let spec = spec();
    let mut a = assignment("u1", "human", 1.0, &[]);
    a.in_experiment = false;
    let folded = fold(&spec, &a, None, &outcome(&a, "e1", 0, &[("minutes", 3.0)]));
    assert!(folded.deltas.is_empty());
    assert_eq!(folded.row.metrics["minutes"].value, 3.0);

    let b = assignment("u2", "ai", 0.6, &[]);
    let folded = fold(&spec, &b, None, &outcome(&b, "e2", 0, &[("unknown", 3.0)]));
    assert!(folded.deltas.is_empty() && folded.row.metrics.is_empty());
    assert_eq!(folded.row.outcomes, 1);
}

#[test]
fn days_are_utc_days_since_the_epoch() {
    assert_eq!(day_of(0), 0);
    assert_eq!(day_of(MS_PER_DAY - 1), 0);
    assert_eq!(day_of(MS_PER_DAY), 1);
    assert_eq!(day_of(-1), -1);
    // 2024-01-01T00:00:00Z is day 19723.
    assert_eq!(day_of(1_704_067_200_000), 19_723);
}

#[test]
fn hours_are_utc_hours_since_the_epoch() {
    assert_eq!(hour_of(0), 0);
    assert_eq!(hour_of(MS_PER_HOUR - 1), 0);
    assert_eq!(hour_of(MS_PER_HOUR), 1);
    assert_eq!(hour_of(-1), -1);
    // 2024-01-01T00:00:00Z is hour 19723 × 24.
    assert_eq!(hour_of(1_704_067_200_000), 19_723 * 24);
}

/// The support spec with a covariate on minutes, a cap on cost and a ratio of cost per minute.
fn paired_spec() -> ExperimentSpec {
    ExperimentSpec::parse(&json!({
        "key": "exp",
        "arms": [{"key": "human", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"human": 0.4, "ai": 0.6}},
        "metrics": [
            {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary",
             "covariate": {"attribute": "estimate"}},
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary",
             "cap": {"max": 300}},
            {"key": "score", "kind": "continuous", "direction": "increase", "role": "secondary", "aggregate": "last"},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail", "aggregate": "max"},
            {"key": "cost_per_minute", "kind": "cost", "direction": "decrease", "role": "secondary",
             "ratio": {"numerator": "cost", "denominator": "minutes"}}
        ],
        "segments": ["channel", "priority"]
    }))
    .expect("valid")
}

/// The (scope, old, new) of the deltas of one metric.
fn of_metric(deltas: &[AggDelta], metric: &str) -> Vec<(AggScope, Option<f64>, f64)> {
    deltas
        .iter()
        .filter(|d| d.key.metric == metric)
        .map(|d| (d.key.scope.clone(), d.old, d.new))
        .collect()
}

#[test]
fn a_covariate_enters_once_and_its_pair_sum_follows_the_value() {
    let spec = paired_spec();
    let a = assignment("u1", "ai", 0.6, &[("estimate", "30"), ("channel", "chat")]);
    let first = fold(&spec, &a, None, &outcome(&a, "e1", 0, &[("minutes", 12.0)]));
    let segment = AggScope::Segment {
        attribute: "channel".into(),
        value: "chat".into(),
    };
    assert_eq!(
        of_metric(&first.deltas, "minutes"),
        vec![
            (AggScope::Overall, None, 12.0),
            (AggScope::Period(0), None, 12.0),
            (segment.clone(), None, 12.0),
            (AggScope::Paired, None, 30.0),
            (AggScope::PairSum, None, 42.0),
            (AggScope::Day(0), None, 12.0),
            (AggScope::Hour(0), None, 12.0),
        ]
    );
    // The mean of 12 and 20 is 16: x moves, the covariate stays.
    let second = fold(
        &spec,
        &a,
        Some(first.row),
        &outcome(&a, "e2", 0, &[("minutes", 20.0)]),
    );
    assert_eq!(
        of_metric(&second.deltas, "minutes"),
        vec![
            (AggScope::Overall, Some(12.0), 16.0),
            (AggScope::Period(0), Some(12.0), 16.0),
            (segment, Some(12.0), 16.0),
            (AggScope::PairSum, Some(42.0), 46.0),
            (AggScope::Day(0), None, 20.0),
            (AggScope::Hour(0), None, 20.0),
        ]
    );
}

#[test]
fn a_unit_assigned_without_its_covariate_counts_with_zero() {
    let spec = paired_spec();
    let a = assignment("u1", "ai", 0.6, &[]);
    let folded = fold(&spec, &a, None, &outcome(&a, "e1", 0, &[("minutes", 7.5)]));
    let pair: Vec<_> = of_metric(&folded.deltas, "minutes")
        .into_iter()
        .filter(|(s, _, _)| matches!(s, AggScope::Paired | AggScope::PairSum))
        .collect();
    assert_eq!(
        pair,
        vec![
            (AggScope::Paired, None, 0.0),
            (AggScope::PairSum, None, 7.5)
        ]
    );
    // A metric without a covariate has no pair.
    let folded = fold(&spec, &a, None, &outcome(&a, "e1", 0, &[("score", 3.0)]));
    assert!(of_metric(&folded.deltas, "score")
        .iter()
        .all(|(s, _, _)| !matches!(s, AggScope::Paired | AggScope::PairSum)));
}

#[test]
fn a_ratio_moves_with_its_numerator_and_denominator() {
    let spec = paired_spec();
    let a = assignment("u1", "ai", 0.6, &[("channel", "chat")]);
    // Cost alone: the pair enters as (cost, 0).
    let first = fold(&spec, &a, None, &outcome(&a, "e1", 0, &[("cost", 3.0)]));
    assert_eq!(
        of_metric(&first.deltas, "cost_per_minute"),
        vec![
            (AggScope::Overall, None, 3.0),
            (AggScope::Paired, None, 0.0),
            (AggScope::PairSum, None, 3.0),
            (AggScope::Period(0), None, 3.0),
            (AggScope::PeriodPaired(0), None, 0.0),
            (AggScope::PeriodPairSum(0), None, 3.0),
        ]
    );
    // Minutes arrive: only y and x + y move (pooled and in the unit's period).
    let second = fold(
        &spec,
        &a,
        Some(first.row),
        &outcome(&a, "e2", 0, &[("minutes", 10.0)]),
    );
    assert_eq!(
        of_metric(&second.deltas, "cost_per_minute"),
        vec![
            (AggScope::Paired, Some(0.0), 10.0),
            (AggScope::PairSum, Some(3.0), 13.0),
            (AggScope::PeriodPaired(0), Some(0.0), 10.0),
            (AggScope::PeriodPairSum(0), Some(3.0), 13.0),
        ]
    );
    // Both parts in one event: cost sums to 5, minutes average to 12.
    let third = fold(
        &spec,
        &a,
        Some(second.row),
        &outcome(&a, "e3", 0, &[("cost", 2.0), ("minutes", 14.0)]),
    );
    assert_eq!(
        of_metric(&third.deltas, "cost_per_minute"),
        vec![
            (AggScope::Overall, Some(3.0), 5.0),
            (AggScope::Paired, Some(10.0), 12.0),
            (AggScope::PairSum, Some(13.0), 17.0),
            (AggScope::Period(0), Some(3.0), 5.0),
            (AggScope::PeriodPaired(0), Some(10.0), 12.0),
            (AggScope::PeriodPairSum(0), Some(13.0), 17.0),
        ]
    );
    // An event that changes neither part (score) moves nothing of the ratio.
    let fourth = fold(
        &spec,
        &a,
        Some(third.row),
        &outcome(&a, "e4", 0, &[("score", 1.0)]),
    );
    assert!(of_metric(&fourth.deltas, "cost_per_minute").is_empty());
    // A ratio never gets a cell of its own, and out-of-experiment units add nothing.
    assert!(!fourth.row.metrics.contains_key("cost_per_minute"));
    let mut b = assignment("u2", "human", 1.0, &[]);
    b.in_experiment = false;
    let outside = fold(&spec, &b, None, &outcome(&b, "e5", 0, &[("cost", 4.0)]));
    assert!(outside.deltas.is_empty());
}

#[test]
fn capped_metrics_fold_event_values_cut_to_the_cap() {
    let spec = paired_spec();
    let a = assignment("u1", "ai", 0.6, &[]);
    let first = fold(&spec, &a, None, &outcome(&a, "e1", 0, &[("cost", 50.0)]));
    let second = fold(
        &spec,
        &a,
        Some(first.row),
        &outcome(&a, "e2", MS_PER_DAY, &[("cost", 5000.0)]),
    );
    let cell = second.row.metrics["cost"];
    assert_eq!((cell.value, cell.count, cell.sum), (350.0, 2, 350.0));
    let cost = of_metric(&second.deltas, "cost");
    assert!(
        cost.contains(&(AggScope::Overall, Some(50.0), 350.0)),
        "{cost:?}"
    );
    assert!(cost.contains(&(AggScope::Day(1), None, 300.0)), "{cost:?}");
    // The ratio sees the capped cost too.
    assert!(of_metric(&second.deltas, "cost_per_minute").contains(&(
        AggScope::Overall,
        Some(50.0),
        350.0
    )));
    // A metric without a cap keeps large values.
    let big = fold(&spec, &a, None, &outcome(&a, "e3", 0, &[("score", 1e6)]));
    assert_eq!(big.row.metrics["score"].value, 1e6);
}

/// Relative tolerance for accumulators built in different orders.
const REBUILD_TOLERANCE: f64 = 1e-9;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= REBUILD_TOLERANCE * (1.0 + a.abs().max(b.abs()))
}

#[derive(Clone, Debug)]
struct Event {
    unit: usize,
    ts: Millis,
    metrics: Vec<(usize, f64)>,
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    let event = (
        0usize..12,
        0i64..(5 * MS_PER_DAY),
        proptest::collection::vec((0usize..4, 0.0f64..500.0), 1..4),
    )
        .prop_map(|(unit, ts, metrics)| Event { unit, ts, metrics });
    proptest::collection::vec(event, 1..120)
}

proptest! {
    /// Folding events incrementally and applying the deltas gives the same aggregates as
    /// recomputing each unit's final value (and pair, for the covariate and the ratio) from
    /// scratch, which is what a rebuild from the log does; the co-moments of the live
    /// aggregates match pushing each unit's final pair.
    #[test]
    fn incremental_folding_matches_a_rebuild(stream in events()) {
        let spec = paired_spec();
        let names = ["minutes", "cost", "score", "escalated"];
        let channels = ["email", "chat", "phone"];
        let units: Vec<Assignment> = (0..12)
            .map(|i| {
                let (arm, p) = if i % 3 == 0 { ("human", 0.4) } else { ("ai", 0.6) };
                let estimate = format!("{}", 4.5 * i as f64);
                let mut segments: Vec<(&str, &str)> = if i % 4 == 0 { vec![] } else { vec![("channel", channels[i % 3])] };
                if i % 5 != 0 {
                    segments.push(("estimate", &estimate));
                }
                assignment(&format!("u{i}"), arm, p, &segments)
            })
            .collect();

        let mut rows: BTreeMap<usize, UnitRow> = BTreeMap::new();
        let mut live: BTreeMap<AggKey, MetricAggregate> = BTreeMap::new();
        let mut day_raw: BTreeMap<AggKey, Vec<(f64, f64)>> = BTreeMap::new();
        for (n, e) in stream.iter().enumerate() {
            let a = &units[e.unit];
            let metrics: Vec<(&str, f64)> = e
                .metrics
                .iter()
                .map(|&(m, x)| (names[m], if names[m] == "escalated" { (x > 250.0) as u8 as f64 } else { x }))
                .collect();
            let o = outcome(a, &format!("e{n}"), e.ts, &metrics);
            let folded = fold(&spec, a, rows.remove(&e.unit), &o);
            for d in &folded.deltas {
                live.entry(d.key.clone()).or_default().try_apply(d).expect("consistent deltas");
                if let AggScope::Day(_) | AggScope::Hour(_) = d.key.scope {
                    day_raw.entry(d.key.clone()).or_default().push((d.new, d.propensity));
                }
            }
            rows.insert(e.unit, folded.row);
        }

        // Rebuild: one value per unit and metric (and pair) from the final rows.
        fn push(rebuilt: &mut BTreeMap<AggKey, MetricAggregate>, key: AggKey, x: f64, p: f64) {
            let agg = rebuilt.entry(key).or_default();
            agg.moments.push(x);
            agg.ipw_weight += 1.0 / p;
            agg.ipw_weighted_sum += x / p;
        }
        let mut rebuilt: BTreeMap<AggKey, MetricAggregate> = BTreeMap::new();
        let mut pairs: BTreeMap<(String, String), liftlab_stats::CoMoments> = BTreeMap::new();
        for row in rows.values() {
            let key = |metric: &str, scope| AggKey { epoch: 0, arm: row.arm.clone(), metric: metric.to_string(), scope };
            let mut push_pair = |rebuilt: &mut BTreeMap<AggKey, MetricAggregate>, metric: &str, x: f64, y: f64| {
                push(rebuilt, key(metric, AggScope::Paired), y, row.propensity);
                push(rebuilt, key(metric, AggScope::PairSum), x + y, row.propensity);
                pairs.entry((row.arm.clone(), metric.to_string())).or_default().push(x, y);
            };
            for (metric, cell) in &row.metrics {
                push(&mut rebuilt, key(metric, AggScope::Overall), cell.value, row.propensity);
                // Every test assignment is placed by period 0.
                push(&mut rebuilt, key(metric, AggScope::Period(0)), cell.value, row.propensity);
                for attribute in spec.segments() {
                    if let Some(v) = row.segments.get(attribute) {
                        let scope = AggScope::Segment { attribute: attribute.clone(), value: v.clone() };
                        push(&mut rebuilt, key(metric, scope), cell.value, row.propensity);
                    }
                }
                if metric == "minutes" {
                    let y = row.segments.get("estimate").map_or(0.0, |v| v.parse().expect("a number"));
                    push_pair(&mut rebuilt, metric, cell.value, y);
                }
            }
            let part = |m: &str| row.metrics.get(m).map(|c| c.value);
            if part("cost").is_some() || part("minutes").is_some() {
                let (x, y) = (part("cost").unwrap_or(0.0), part("minutes").unwrap_or(0.0));
                push(&mut rebuilt, key("cost_per_minute", AggScope::Overall), x, row.propensity);
                push_pair(&mut rebuilt, "cost_per_minute", x, y);
                // And the same pair under the unit's allocation period (every test unit's is 0).
                for (scope, v) in [
                    (AggScope::Period(0), x),
                    (AggScope::PeriodPaired(0), y),
                    (AggScope::PeriodPairSum(0), x + y),
                ] {
                    push(&mut rebuilt, key("cost_per_minute", scope), v, row.propensity);
                }
            }
        }
        for (key, values) in day_raw {
            for (x, p) in values {
                push(&mut rebuilt, key.clone(), x, p);
            }
        }

        let live_keys: Vec<&AggKey> = live.iter().filter(|(_, a)| a.moments.n() > 0).map(|(k, _)| k).collect();
        let rebuilt_keys: Vec<&AggKey> = rebuilt.keys().collect();
        prop_assert_eq!(live_keys, rebuilt_keys);
        for (key, want) in &rebuilt {
            let got = &live[key];
            prop_assert_eq!(got.moments.n(), want.moments.n(), "{:?}", key);
            prop_assert!(close(got.moments.mean(), want.moments.mean()), "{:?}: {:?} vs {:?}", key, got, want);
            prop_assert!(close(got.moments.m2(), want.moments.m2()), "{:?}: {:?} vs {:?}", key, got, want);
            prop_assert!(close(got.ipw_weight, want.ipw_weight), "{:?}", key);
            prop_assert!(close(got.ipw_weighted_sum, want.ipw_weighted_sum), "{:?}", key);
        }
        for ((arm, metric), want) in &pairs {
            let moments = |scope| {
                live.get(&AggKey { epoch: 0, arm: arm.clone(), metric: metric.clone(), scope })
                    .map(|a| a.moments)
                    .unwrap_or_default()
            };
            let got = co_moments(&moments(AggScope::Overall), &moments(AggScope::Paired), &moments(AggScope::PairSum));
            prop_assert_eq!(got.n(), want.n(), "{} {}", arm, metric);
            let scale = (want.m2_x() * want.m2_y()).sqrt();
            prop_assert!((got.c_xy() - want.c_xy()).abs() <= 1e-7 * (1.0 + scale), "{} {}: {} vs {}", arm, metric, got.c_xy(), want.c_xy());
        }
    }
}
