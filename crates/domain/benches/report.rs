//! Criterion benchmark of report assembly from aggregates standing for 1,000 and 1,000,000 recorded outcomes.
//!
//! Both inputs have the same shape (2 arms, 3 metrics, one segment attribute with 4 values,
//! 30 daily buckets, sequential analysis, ROI and drift), so the two timings should match:
//! the report reads aggregates, never events.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use liftlab_domain::lifecycle::{ExperimentVersion, Transition};
use liftlab_domain::model::{AggKey, AggScope, AllocationPeriod, HandledBy, MetricAggregate};
use liftlab_domain::report::{build, ArmTally, EpochInfo, PeriodCount, ReportInput};
use liftlab_domain::ExperimentSpec;
use liftlab_stats::Moments;
use liftlab_testkit::unit_random;
use serde_json::json;

const ARMS: [&str; 2] = ["human", "ai_assist"];
const REGIONS: [&str; 4] = ["emea", "amer", "apac", "latam"];
const DAYS: i64 = 30;

fn version() -> ExperimentVersion {
    let spec = ExperimentSpec::parse(&json!({
        "key": "support-ai",
        "arms": [{"key": "human", "role": "baseline"}, {"key": "ai_assist", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai_assist": 0.5}},
        "metrics": [
            {"key": "cycle_time", "kind": "duration", "direction": "decrease", "role": "primary"},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail"},
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary"}
        ],
        "analysis": {"sequential": true, "auto_pause_on_harm": true},
        "segments": ["region"],
        "drift": {"metrics": ["cycle_time"]},
        "roi": {"volume_per_month": 12000, "human_cost_per_hour": 45}
    }))
    .expect("the benchmark spec is valid");
    ExperimentVersion::created(spec, 0)
        .transitioned(Transition::Start, None, 1)
        .expect("start")
}

/// The inputs of a report over `outcomes` outcomes (one per unit), folded as the store folds them.
struct Inputs {
    aggregates: Vec<(AggKey, MetricAggregate)>,
    tallies: Vec<ArmTally>,
    assignments: Vec<PeriodCount>,
    periods: Vec<AllocationPeriod>,
    epochs: Vec<EpochInfo>,
}

fn inputs(outcomes: u64) -> Inputs {
    let mut map: BTreeMap<AggKey, Moments> = BTreeMap::new();
    let mut units = [0u64; 2];
    for i in 0..outcomes {
        let a = usize::from(i % 2 == 1);
        units[a] += 1;
        let values = [
            (
                "cycle_time",
                (if a == 1 { 24.0 } else { 30.0 }) + 12.0 * unit_random(i, 1),
            ),
            ("escalated", if unit_random(i, 2) < 0.1 { 1.0 } else { 0.0 }),
            (
                "cost",
                (if a == 1 { 4.2 } else { 6.0 }) + 2.0 * unit_random(i, 3),
            ),
        ];
        let region = REGIONS[usize::try_from(i / 2 % 4).expect("small")];
        let day = 20_513 + i64::try_from(i / 2 % 30).expect("small");
        for (metric, v) in values {
            for scope in [
                AggScope::Overall,
                AggScope::Segment {
                    attribute: "region".into(),
                    value: region.into(),
                },
                AggScope::Day(day),
            ] {
                map.entry(AggKey {
                    epoch: 0,
                    arm: ARMS[a].into(),
                    metric: metric.into(),
                    scope,
                })
                .or_default()
                .push(v);
            }
        }
    }
    let aggregates = map
        .into_iter()
        .map(|(k, moments)| {
            let n = moments.n() as f64;
            (
                k,
                MetricAggregate {
                    moments,
                    ipw_weight: 2.0 * n,
                    ipw_weighted_sum: 2.0 * moments.sum(),
                },
            )
        })
        .collect::<Vec<_>>();
    assert_eq!(
        aggregates.len(),
        2 * 3 * (1 + REGIONS.len() + usize::try_from(DAYS).expect("small"))
    );
    Inputs {
        aggregates,
        tallies: ARMS
            .iter()
            .zip(units)
            .map(|(arm, n)| ArmTally {
                arm: arm.to_string(),
                units: n,
                outcomes: n,
                handled_by: BTreeMap::from([(HandledBy::Ai, n / 2), (HandledBy::Human, n - n / 2)]),
            })
            .collect(),
        assignments: ARMS
            .iter()
            .zip(units)
            .map(|(arm, n)| PeriodCount {
                period: 0,
                arm: arm.to_string(),
                count: n + n / 20,
            })
            .collect(),
        periods: vec![AllocationPeriod {
            experiment: "support-ai".into(),
            period: 0,
            weights: vec![("human".into(), 0.5), ("ai_assist".into(), 0.5)],
            opened_at: 0,
            rewards_seen: 0,
        }],
        epochs: vec![EpochInfo {
            epoch: 0,
            reason: "created".into(),
            started_at: 0,
            version: 1,
        }],
    }
}

fn bench(c: &mut Criterion) {
    let version = version();
    let mut group = c.benchmark_group("report_build");
    for (name, outcomes) in [("1k_outcomes", 1_000u64), ("1m_outcomes", 1_000_000)] {
        let inputs = inputs(outcomes);
        let input = ReportInput {
            version: &version,
            epoch: 0,
            aggregates: &inputs.aggregates,
            tallies: &inputs.tallies,
            assignments: &inputs.assignments,
            periods: &inputs.periods,
            epochs: &inputs.epochs,
            drift: None,
            pause_reason: None,
        };
        group.bench_function(name, |b| b.iter(|| black_box(build(black_box(&input)))));
        group.bench_function(format!("{name}_json"), |b| {
            b.iter(|| black_box(serde_json::to_vec(&build(black_box(&input))).expect("json")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
