//! Tests of report assembly: numbers against liftlab-stats on two-pass statistics of raw data, gbstats and scipy reference values, the JSON shape and the CSV.
//!
//! This file holds the fixtures the report tests share (specs, raw units, their aggregates and
//! reports); the tests live one area a module: `numbers.rs`, `sections.rs`, `shape.rs`, `output.rs`.

use std::collections::BTreeMap;

use expect_test::expect;
use liftlab_stats::{
    achieved_power, bayesian, cochran_q, effect_sizes, holm, relative_lift, welch_absolute,
    Alternative, Baseline, Design, Moments, PowerSettings, SampleStats,
};
use liftlab_testkit::spec::{support_desk, with};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::*;
use crate::drift::{Detection, Detector, DriftMonitor, ShiftDirection};
use crate::lifecycle::{ExperimentVersion, Transition};
use crate::model::{AggDelta, AggKey, AggScope, AllocationPeriod, MetricAggregate};
use crate::spec::ExperimentSpec;

/// Agreement expected between two computations of the same formula (rounding only).
const SAME: f64 = 1e-9;
/// The precision of gbstats' 5-decimal assertions.
const GB5: f64 = 1e-5;
/// The precision of gbstats' 9-decimal assertions.
const GB9: f64 = 1e-9;
/// Agreement with scipy values printed to full double precision.
const SCIPY: f64 = 1e-9;

fn close(actual: f64, expected: f64, tol: f64, what: &str) {
    let scale = expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tol * scale,
        "{what}: got {actual}, expected {expected} (tolerance {tol})"
    );
}

pub(super) fn parse(doc: Value) -> ExperimentSpec {
    match ExperimentSpec::parse(&doc) {
        Ok(spec) => spec,
        Err(e) => panic!("test spec is invalid: {e}"),
    }
}

pub(super) fn running(spec: ExperimentSpec) -> ExperimentVersion {
    ExperimentVersion::created(spec, 0)
        .transitioned(Transition::Start, None, 1)
        .expect("a draft can start")
}

/// The support-desk experiment most tests use.
fn support_spec(extra: Value) -> ExperimentSpec {
    let doc = with(
        support_desk(),
        json!({
            "hypothesis": "AI drafts cut cycle time without more escalations",
            "owner": "ops",
            "roi": {"volume_per_month": 10000, "human_cost_per_hour": 40}
        }),
    );
    parse(with(doc, extra))
}

/// One unit of raw data.
#[derive(Clone, Debug)]
struct RawUnit {
    arm: String,
    values: BTreeMap<String, f64>,
    segments: BTreeMap<String, String>,
    propensity: f64,
}

/// Folds raw units into aggregates the way the store does: one `AggDelta` per unit and metric,
/// into the overall and each segment accumulator.
fn aggregate(epoch: u64, units: &[RawUnit]) -> Vec<(AggKey, MetricAggregate)> {
    let mut map: BTreeMap<AggKey, MetricAggregate> = BTreeMap::new();
    for u in units {
        for (metric, value) in &u.values {
            let mut scopes = vec![AggScope::Overall];
            for (attribute, v) in &u.segments {
                scopes.push(AggScope::Segment {
                    attribute: attribute.clone(),
                    value: v.clone(),
                });
            }
            for scope in scopes {
                let key = AggKey {
                    epoch,
                    arm: u.arm.clone(),
                    metric: metric.clone(),
                    scope,
                };
                map.entry(key.clone()).or_default().apply(&AggDelta {
                    key,
                    old: None,
                    new: *value,
                    propensity: u.propensity,
                });
            }
        }
    }
    map.into_iter().collect()
}

/// Mean and sample variance by the two-pass formula, straight from the raw values.
fn two_pass(xs: &[f64]) -> SampleStats {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    SampleStats::new(n, mean, var)
}

fn values(units: &[RawUnit], arm: &str, metric: &str) -> Vec<f64> {
    units
        .iter()
        .filter(|u| u.arm == arm)
        .filter_map(|u| u.values.get(metric).copied())
        .collect()
}

fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Support-desk data: cycle time in minutes, escalations and cost per case, with regions.
fn support_data(seed: u64, per_arm: usize, ai_minutes: f64, ai_escalation: f64) -> Vec<RawUnit> {
    let mut rng = StdRng::seed_from_u64(seed);
    let regions = ["emea", "amer", "apac"];
    let mut units = Vec::new();
    for (arm, minutes, escalation, cost) in [
        ("human", 30.0, 0.12, 6.0),
        ("ai_assist", ai_minutes, ai_escalation, 4.0),
    ] {
        for i in 0..per_arm {
            let t = (minutes + 8.0 * normal(&mut rng)).max(0.5);
            let e = if rng.random::<f64>() < escalation {
                1.0
            } else {
                0.0
            };
            let c = (cost + 1.5 * normal(&mut rng)).max(0.0);
            units.push(RawUnit {
                arm: arm.to_string(),
                values: BTreeMap::from([
                    ("cycle_time".to_string(), t),
                    ("escalated".to_string(), e),
                    ("cost".to_string(), c),
                ]),
                segments: BTreeMap::from([(
                    "region".to_string(),
                    regions[i % regions.len()].to_string(),
                )]),
                propensity: 0.5,
            });
        }
    }
    units
}

/// Assignment counts of a fixed 50/50 experiment where every unit reported.
fn counts(units: &[RawUnit]) -> (Vec<PeriodCount>, Vec<ArmTally>) {
    let mut per_arm: BTreeMap<&str, u64> = BTreeMap::new();
    for u in units {
        *per_arm.entry(&u.arm).or_default() += 1;
    }
    let assignments = per_arm
        .iter()
        .map(|(arm, n)| PeriodCount {
            period: 0,
            arm: arm.to_string(),
            count: *n,
        })
        .collect();
    let tallies = per_arm
        .iter()
        .map(|(arm, n)| ArmTally {
            arm: arm.to_string(),
            units: *n,
            outcomes: *n,
            handled_by: BTreeMap::new(),
        })
        .collect();
    (assignments, tallies)
}

fn fixed_period(spec: &ExperimentSpec) -> Vec<AllocationPeriod> {
    vec![AllocationPeriod {
        experiment: spec.key().to_string(),
        period: 0,
        weights: spec
            .arms()
            .iter()
            .map(|a| (a.key().to_string(), 1.0 / spec.arms().len() as f64))
            .collect(),
        opened_at: 0,
        rewards_seen: 0,
    }]
}

fn epochs() -> Vec<EpochInfo> {
    vec![EpochInfo {
        epoch: 0,
        reason: "created".to_string(),
        started_at: 0,
        version: 1,
    }]
}

/// What an epoch-0 report reads besides the data: the allocation periods and the epochs, by
/// default a fixed experiment's one period and its first epoch.
struct Frame {
    periods: Vec<AllocationPeriod>,
    epochs: Vec<EpochInfo>,
}

impl Frame {
    fn of(version: &ExperimentVersion) -> Frame {
        Frame {
            periods: fixed_period(&version.spec),
            epochs: epochs(),
        }
    }

    /// `report::build`'s input over the data given, with no drift monitor and no pause.
    fn input<'a>(
        &'a self,
        version: &'a ExperimentVersion,
        aggregates: &'a [(AggKey, MetricAggregate)],
        tallies: &'a [ArmTally],
        assignments: &'a [PeriodCount],
    ) -> ReportInput<'a> {
        ReportInput {
            version,
            epoch: 0,
            aggregates,
            tallies,
            assignments,
            periods: &self.periods,
            epochs: &self.epochs,
            drift: None,
            pause_reason: None,
        }
    }
}

/// Builds the report of epoch 0 over `units` with every unit assigned and reporting.
fn report_of(version: &ExperimentVersion, units: &[RawUnit]) -> Report {
    let aggregates = aggregate(0, units);
    let (assignments, tallies) = counts(units);
    build(&Frame::of(version).input(version, &aggregates, &tallies, &assignments))
}

fn metric<'a>(report: &'a Report, key: &str) -> &'a MetricResult {
    report
        .metrics
        .iter()
        .find(|m| m.key == key)
        .unwrap_or_else(|| panic!("metric {key} is in the report"))
}

/// A monitor holding one detection, made by feeding a real shifted stream.
fn monitor_with_detection(spec: &ExperimentSpec) -> DriftMonitor {
    let mut monitor = DriftMonitor::new();
    let mut rng = StdRng::seed_from_u64(99);
    let mut ts = 1_772_357_400_000 - 2_000_000;
    for i in 0..5000 {
        let shift = if i >= 1000 { 16.0 } else { 0.0 };
        ts += 1000;
        let outcome = crate::model::Outcome {
            event_id: format!("e{i}"),
            experiment: spec.key().to_string(),
            task_id: format!("t{i}"),
            unit_id: format!("u{i}"),
            arm: "human".to_string(),
            epoch: 0,
            ts,
            metrics: BTreeMap::from([(
                "cycle_time".to_string(),
                30.0 + shift + 8.0 * normal(&mut rng),
            )]),
            handled_by: None,
            model_version: None,
            attributes: BTreeMap::new(),
        };
        if !monitor.observe(spec, &outcome).is_empty() {
            break;
        }
    }
    assert_eq!(monitor.detections().len(), 1, "the shift is detected once");
    // Pin the timestamp so the snapshot does not depend on the detection delay.
    let d = &monitor.detections()[0];
    let mut pinned = DriftMonitor::new();
    pinned.push_detection_for_tests(Detection {
        detected_at: 1_772_357_400_000,
        detector: Detector::Cusum,
        direction: ShiftDirection::Up,
        ..d.clone()
    });
    pinned
}

pub(super) fn sums(
    epoch: u64,
    arm: &str,
    metric: &str,
    n: u64,
    sum: f64,
    sum_sq: f64,
) -> (AggKey, MetricAggregate) {
    (
        AggKey {
            epoch,
            arm: arm.to_string(),
            metric: metric.to_string(),
            scope: AggScope::Overall,
        },
        MetricAggregate {
            moments: Moments::from_sums(n, sum, sum_sq),
            ipw_weight: 0.0,
            ipw_weighted_sum: 0.0,
        },
    )
}

pub(super) fn build_with(
    version: &ExperimentVersion,
    aggregates: &[(AggKey, MetricAggregate)],
    assignments: &[PeriodCount],
) -> Report {
    build(&Frame::of(version).input(version, aggregates, &[], assignments))
}

mod numbers;
mod output;
mod sections;
mod shape;
