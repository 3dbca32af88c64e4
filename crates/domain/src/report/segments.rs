//! Segment breakdowns: the primary metric's lift per segment value (bounded cardinality), Cochran's Q across values, and disparate impact of favourable binary outcomes.

use std::collections::BTreeMap;

use liftlab_stats::{
    cochran_q, disparate_impact_min, relative_lift, Alternative, Moments, SampleStats,
};

use super::compare::{arm_stats, floor_lift};
use super::types::{
    DisparateImpactEntry, Heterogeneity, Interval, SegmentBreakdown, SegmentLift, SegmentValue,
};
use super::AggIndex;
use crate::model::AggScope;
use crate::spec::{Direction, ExperimentSpec, MetricKind};

/// The most values shown per attribute; the values with the fewest units beyond this are merged
/// into one `other` value.
pub const MAX_SEGMENT_VALUES: usize = 10;

/// The name of the merged value.
pub const OTHER: &str = "other";

/// The fewest units a segment value needs in an arm to enter the disparate-impact ratio.
pub const MIN_DISPARATE_IMPACT_UNITS: u64 = 30;

/// The four-fifths rule: a ratio below this is flagged.
pub const FOUR_FIFTHS: f64 = 0.8;

/// Per arm, the moments of `metric` for each bucket of `attribute`.
fn buckets(
    spec: &ExperimentSpec,
    index: &AggIndex<'_>,
    attribute: &str,
    metric: &str,
    bucket_of: &BTreeMap<String, String>,
) -> Vec<BTreeMap<String, Moments>> {
    spec.arms()
        .iter()
        .map(|arm| {
            let mut out: BTreeMap<String, Moments> = BTreeMap::new();
            for (scope, agg) in index.scoped(arm.key(), metric) {
                if let AggScope::Segment {
                    attribute: a,
                    value,
                } = scope
                {
                    if a == attribute {
                        let bucket = bucket_of.get(value).map_or(OTHER, String::as_str);
                        out.entry(bucket.to_string())
                            .or_default()
                            .merge(&agg.moments);
                    }
                }
            }
            out
        })
        .collect()
}

/// Maps every value of `attribute` to its shown bucket: the values with the most units of the
/// primary metric keep their name, the rest become `other`.
fn bucket_map(
    spec: &ExperimentSpec,
    index: &AggIndex<'_>,
    attribute: &str,
) -> Vec<(String, String)> {
    let mut units: BTreeMap<&str, u64> = BTreeMap::new();
    for metric in spec.metrics() {
        for arm in spec.arms() {
            for (scope, agg) in index.scoped(arm.key(), metric.key()) {
                if let AggScope::Segment {
                    attribute: a,
                    value,
                } = scope
                {
                    if a == attribute {
                        let n = units.entry(value.as_str()).or_default();
                        if metric.key() == spec.primary().key() {
                            *n += agg.moments.n();
                        }
                    }
                }
            }
        }
    }
    let mut ranked: Vec<(&str, u64)> = units.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let keep = if ranked.len() > MAX_SEGMENT_VALUES {
        MAX_SEGMENT_VALUES - 1
    } else {
        ranked.len()
    };
    ranked
        .iter()
        .enumerate()
        .map(|(i, (value, _))| {
            let bucket = if i < keep { value } else { OTHER };
            (value.to_string(), bucket.to_string())
        })
        .collect()
}

/// Every declared attribute's breakdown.
pub(crate) fn segments(spec: &ExperimentSpec, index: &AggIndex<'_>) -> Vec<SegmentBreakdown> {
    spec.segments()
        .iter()
        .map(|attribute| breakdown(spec, index, attribute))
        .collect()
}

fn breakdown(spec: &ExperimentSpec, index: &AggIndex<'_>, attribute: &str) -> SegmentBreakdown {
    let alpha = spec.analysis().alpha();
    let mapping = bucket_map(spec, index, attribute);
    let bucket_of: BTreeMap<String, String> = mapping.iter().cloned().collect();
    // Buckets in rank order, `other` last.
    let mut order: Vec<String> = Vec::new();
    for (_, bucket) in &mapping {
        if bucket != OTHER && !order.contains(bucket) {
            order.push(bucket.clone());
        }
    }
    if mapping.iter().any(|(_, b)| b == OTHER) {
        order.push(OTHER.to_string());
    }
    let primary = spec.primary();
    let per_arm = buckets(spec, index, attribute, primary.key(), &bucket_of);
    let baseline = spec.baseline_index();
    let empty = Moments::new();
    let values: Vec<SegmentValue> = order
        .iter()
        .map(|bucket| {
            let arms = spec
                .arms()
                .iter()
                .zip(&per_arm)
                .map(|(arm, m)| arm_stats(arm.key(), m.get(bucket).unwrap_or(&empty), None))
                .collect();
            let control = SampleStats::from(per_arm[baseline].get(bucket).unwrap_or(&empty));
            let lifts = spec
                .arms()
                .iter()
                .zip(&per_arm)
                .filter(|(arm, _)| !arm.is_baseline())
                .map(|(arm, m)| {
                    let treatment = SampleStats::from(m.get(bucket).unwrap_or(&empty));
                    let lift =
                        relative_lift(&control, &treatment, alpha, Alternative::TwoSided).ok();
                    SegmentLift {
                        arm: arm.key().to_string(),
                        relative: lift.map(|l| Interval {
                            estimate: l.estimate,
                            ci_low: floor_lift(primary.kind(), l.ci_low),
                            ci_high: l.ci_high,
                        }),
                        p_value: lift.map(|l| l.p_value),
                    }
                })
                .collect();
            SegmentValue {
                value: bucket.clone(),
                arms,
                lifts,
            }
        })
        .collect();
    let heterogeneity = spec
        .treatments()
        .filter_map(|arm| {
            let pairs: Vec<(f64, f64)> = order
                .iter()
                .filter_map(|bucket| {
                    let control = SampleStats::from(per_arm[baseline].get(bucket)?);
                    let i = spec.arm_index(arm.key())?;
                    let treatment = SampleStats::from(per_arm[i].get(bucket)?);
                    let lift =
                        relative_lift(&control, &treatment, alpha, Alternative::TwoSided).ok()?;
                    (lift.se > 0.0).then_some((lift.estimate, lift.se))
                })
                .collect();
            let q = cochran_q(&pairs).ok()?;
            Some(Heterogeneity {
                arm: arm.key().to_string(),
                q: q.q,
                df: q.df,
                p_value: q.p_value,
                i_squared: q.i_squared,
            })
        })
        .collect();
    SegmentBreakdown {
        attribute: attribute.to_string(),
        values,
        heterogeneity,
        disparate_impact: disparate_impact(spec, index, attribute, &bucket_of),
    }
}

/// The disparate-impact ratio of each favourable binary outcome across an attribute's values,
/// per arm, over values with at least [`MIN_DISPARATE_IMPACT_UNITS`] units.
fn disparate_impact(
    spec: &ExperimentSpec,
    index: &AggIndex<'_>,
    attribute: &str,
    bucket_of: &BTreeMap<String, String>,
) -> Vec<DisparateImpactEntry> {
    let mut out = Vec::new();
    for metric in spec
        .metrics()
        .iter()
        .filter(|m| m.kind() == MetricKind::Binary)
    {
        let per_arm = buckets(spec, index, attribute, metric.key(), bucket_of);
        for (arm, values) in spec.arms().iter().zip(&per_arm) {
            let eligible: Vec<(&String, f64)> = values
                .iter()
                .filter(|(_, m)| m.n() >= MIN_DISPARATE_IMPACT_UNITS)
                .map(|(value, m)| {
                    let rate = match metric.direction() {
                        Direction::Increase => m.mean(),
                        Direction::Decrease => 1.0 - m.mean(),
                    };
                    (value, rate.clamp(0.0, 1.0))
                })
                .collect();
            if eligible.len() < 2 {
                continue;
            }
            let rates: Vec<f64> = eligible.iter().map(|(_, r)| *r).collect();
            if let Ok(di) = disparate_impact_min(&rates) {
                out.push(DisparateImpactEntry {
                    metric: metric.key().to_string(),
                    arm: arm.key().to_string(),
                    ratio: di.ratio,
                    least_favoured: eligible[di.group].0.clone(),
                    most_favoured: eligible[di.reference].0.clone(),
                    flagged: di.ratio < FOUR_FIFTHS,
                });
            }
        }
    }
    out
}
