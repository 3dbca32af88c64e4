//! Experiment health: assignment and SRM (bandit-aware), allocation history, outcome coverage with the differential-attrition test, and power.

use std::collections::BTreeMap;

use liftlab_stats::dist::chi2_sf;
use liftlab_stats::{
    achieved_power, mde_at, sample_size_per_arm, srm, Alternative, Baseline, Design, PowerSettings,
};

use super::compare::{count_f64, len_f64, whole};
use super::text::format_ts;
use super::types::{AllocationEntry, ArmSummary, Attrition, Coverage, PowerResult, SrmResult};
use super::{AggIndex, ArmTally, ReportInput};
use crate::spec::{Allocation, ExperimentSpec};

/// The p-value below which outcome coverage is said to differ between arms.
pub const ATTRITION_ALPHA: f64 = 0.01;

/// The most allocation periods listed one by one; longer histories are merged into this many
/// consecutive groups (weights averaged over the units each period assigned).
pub const MAX_ALLOCATION_ENTRIES: usize = 100;

/// The weights of each arm in the spec's arm order for one period: the stored period's, the
/// spec's fixed weights, or uniform.
fn period_weights(spec: &ExperimentSpec, stored: Option<&[(String, f64)]>) -> Vec<f64> {
    let lookup = |weights: &[(String, f64)]| -> Vec<f64> {
        spec.arms()
            .iter()
            .map(|a| {
                weights
                    .iter()
                    .find(|(k, _)| k == a.key())
                    .map_or(0.0, |(_, w)| *w)
            })
            .collect()
    };
    match (stored, spec.allocation()) {
        (Some(weights), _) => lookup(weights),
        (None, Allocation::Fixed(fixed)) => lookup(fixed.weights()),
        (None, Allocation::Thompson(_)) => {
            vec![1.0 / len_f64(spec.arms().len()); spec.arms().len()]
        }
    }
}

/// Arms with their assigned units and expected shares, the SRM check and the allocation history.
///
/// The expected count of arm a is Σ over periods of N_period · w_period,a, so a bandit's
/// changing weights are honoured.
pub(crate) fn arms_and_srm(
    spec: &ExperimentSpec,
    input: &ReportInput<'_>,
) -> (Vec<ArmSummary>, SrmResult, Vec<AllocationEntry>) {
    let k = spec.arms().len();
    // Units per (period, arm index).
    let mut per_period: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for c in input.assignments {
        if let Some(i) = spec.arm_index(&c.arm) {
            per_period.entry(c.period).or_insert_with(|| vec![0; k])[i] += c.count;
        }
    }
    let stored: BTreeMap<u64, &[(String, f64)]> = input
        .periods
        .iter()
        .map(|p| (p.period, p.weights.as_slice()))
        .collect();
    let mut observed = vec![0.0; k];
    let mut expected = vec![0.0; k];
    for (period, counts) in &per_period {
        let weights = period_weights(spec, stored.get(period).copied());
        let total: f64 = counts.iter().map(|c| count_f64(*c)).sum();
        let sum_w: f64 = weights.iter().sum();
        for i in 0..k {
            observed[i] += count_f64(counts[i]);
            if sum_w > 0.0 {
                expected[i] += total * weights[i] / sum_w;
            }
        }
    }
    let total: f64 = observed.iter().sum();
    let shares: Vec<f64> = if total > 0.0 {
        expected.iter().map(|e| e / total).collect()
    } else {
        let latest = input.periods.iter().max_by_key(|p| p.period);
        let weights = period_weights(spec, latest.map(|p| p.weights.as_slice()));
        let sum_w: f64 = weights.iter().sum();
        weights
            .iter()
            .map(|w| if sum_w > 0.0 { w / sum_w } else { 0.0 })
            .collect()
    };
    let check = srm(&observed, &expected);
    let arms = spec
        .arms()
        .iter()
        .enumerate()
        .map(|(i, a)| ArmSummary {
            key: a.key().to_string(),
            role: a.role(),
            assigned: per_period.values().map(|c| c[i]).sum(),
            expected_share: shares[i],
            handled_by: input
                .tallies
                .iter()
                .filter(|t| t.arm == a.key())
                .flat_map(|t| t.handled_by.iter().map(|(by, n)| (*by, *n)))
                .collect(),
        })
        .collect();
    let srm = SrmResult {
        chi2: check.chi2,
        p_value: check.p_value,
        ok: check.ok,
    };
    (arms, srm, allocation(spec, input, &per_period))
}

/// The allocation history, merged into at most [`MAX_ALLOCATION_ENTRIES`] groups, each with
/// its own SRM check (its units against its own weights; a merged group's expected counts
/// are the sums of its periods').
fn allocation(
    spec: &ExperimentSpec,
    input: &ReportInput<'_>,
    per_period: &BTreeMap<u64, Vec<u64>>,
) -> Vec<AllocationEntry> {
    let mut periods: Vec<_> = input.periods.iter().collect();
    periods.sort_by_key(|p| p.period);
    let k = spec.arms().len();
    let group = periods.len().div_ceil(MAX_ALLOCATION_ENTRIES).max(1);
    periods
        .chunks(group)
        .map(|chunk| {
            let first = chunk[0];
            let mut assigned = vec![0u64; k];
            let mut weighted = vec![0.0; k];
            let mut plain = vec![0.0; k];
            let mut expected = vec![0.0; k];
            for p in chunk {
                let counts = per_period.get(&p.period);
                let n: u64 = counts.map_or(0, |c| c.iter().sum());
                let weights = period_weights(spec, Some(&p.weights));
                let sum_w: f64 = weights.iter().sum();
                for i in 0..k {
                    assigned[i] += counts.map_or(0, |c| c[i]);
                    weighted[i] += count_f64(n) * weights[i];
                    plain[i] += weights[i] / len_f64(chunk.len());
                    if sum_w > 0.0 {
                        expected[i] += count_f64(n) * weights[i] / sum_w;
                    }
                }
            }
            let units: f64 = assigned.iter().map(|c| count_f64(*c)).sum();
            let observed: Vec<f64> = assigned.iter().map(|c| count_f64(*c)).collect();
            let period_srm = (units > 0.0).then(|| {
                let check = srm(&observed, &expected);
                SrmResult {
                    chi2: check.chi2,
                    p_value: check.p_value,
                    ok: check.ok,
                }
            });
            let weights = if units > 0.0 {
                weighted.iter().map(|w| w / units).collect()
            } else {
                plain
            };
            AllocationEntry {
                period: first.period,
                opened_at: format_ts(first.opened_at),
                opened_at_ms: first.opened_at,
                weights: spec
                    .arms()
                    .iter()
                    .zip(weights)
                    .map(|(a, w)| (a.key().to_string(), w))
                    .collect(),
                assigned: spec
                    .arms()
                    .iter()
                    .zip(assigned)
                    .map(|(a, n)| (a.key().to_string(), n))
                    .collect(),
                srm: period_srm,
            }
        })
        .collect()
}

/// Pearson's chi-square test of independence on a 2 × k table given as (yes, no) per column
/// (= scipy.stats.chi2_contingency(correction=False)). Columns with no units are left out;
/// fewer than two columns, or a row that is all zero, gives (0, 1).
pub(crate) fn chi2_independence(columns: &[(f64, f64)]) -> (f64, f64) {
    let columns: Vec<(f64, f64)> = columns
        .iter()
        .copied()
        .filter(|(y, n)| y + n > 0.0)
        .collect();
    let yes: f64 = columns.iter().map(|c| c.0).sum();
    let no: f64 = columns.iter().map(|c| c.1).sum();
    let total = yes + no;
    if columns.len() < 2 || yes <= 0.0 || no <= 0.0 {
        return (0.0, 1.0);
    }
    let chi2: f64 = columns
        .iter()
        .map(|(y, n)| {
            let col = y + n;
            let (ey, en) = (col * yes / total, col * no / total);
            (y - ey).powi(2) / ey + (n - en).powi(2) / en
        })
        .sum();
    let df = len_f64(columns.len() - 1);
    (chi2, chi2_sf(chi2, df).clamp(0.0, 1.0))
}

/// Outcome coverage per arm (units with an outcome / units assigned) and the chi-square test of
/// outcome/no-outcome by arm.
pub(crate) fn attrition(
    spec: &ExperimentSpec,
    arms: &[ArmSummary],
    tallies: &[ArmTally],
) -> Attrition {
    let coverage: Vec<Coverage> = spec
        .arms()
        .iter()
        .zip(arms)
        .map(|(a, summary)| {
            let with_outcome = tallies
                .iter()
                .filter(|t| t.arm == a.key())
                .map(|t| t.units)
                .sum();
            Coverage {
                arm: a.key().to_string(),
                assigned: summary.assigned,
                with_outcome,
                coverage: (summary.assigned > 0)
                    .then(|| count_f64(with_outcome) / count_f64(summary.assigned)),
            }
        })
        .collect();
    // Units that reported but were assigned in an earlier epoch can push outcomes above
    // assignments; the test then treats the arm as fully covered.
    let columns: Vec<(f64, f64)> = coverage
        .iter()
        .map(|c| {
            let total = c.assigned.max(c.with_outcome);
            (count_f64(c.with_outcome), count_f64(total - c.with_outcome))
        })
        .collect();
    let (chi2, p_value) = chi2_independence(&columns);
    Attrition {
        arms: coverage,
        chi2,
        p_value,
        ok: p_value >= ATTRITION_ALPHA,
    }
}

/// Power of the primary metric at the spec's minimum detectable effect, and the units still needed.
pub(crate) fn power(spec: &ExperimentSpec, index: &AggIndex<'_>) -> Option<PowerResult> {
    let analysis = spec.analysis();
    let metric = spec.primary();
    let baseline = index.overall(spec.baseline().key(), metric.key()).moments;
    let n_per_arm = spec
        .arms()
        .iter()
        .map(|a| index.overall(a.key(), metric.key()).moments.n())
        .min()
        .unwrap_or(0);
    let design = if analysis.sequential() {
        Design::Sequential {
            tau: analysis.sequential_tuning(),
        }
    } else {
        Design::Fixed
    };
    let settings = PowerSettings {
        alpha: analysis.alpha(),
        alternative: Alternative::TwoSided,
        design,
        relative: true,
    };
    let mut out = PowerResult {
        metric: metric.key().to_string(),
        mde: analysis.mde(),
        target_power: analysis.power(),
        alpha: analysis.alpha(),
        design: if analysis.sequential() {
            "sequential"
        } else {
            "fixed"
        }
        .to_string(),
        n_per_arm,
        achieved_power: None,
        needed_per_arm: None,
        more_units_needed: None,
        mde_now: None,
        note: None,
    };
    if baseline.n() < 2 || baseline.mean() == 0.0 || baseline.variance() <= 0.0 {
        out.note = Some(
            "the baseline needs at least 2 units, a non-zero mean and some spread".to_string(),
        );
        return Some(out);
    }
    let base = Baseline {
        mean: baseline.mean(),
        variance: baseline.variance(),
    };
    let n = count_f64(n_per_arm);
    if n_per_arm >= 2 {
        out.achieved_power = achieved_power(&base, analysis.mde(), n, &settings).ok();
        out.mde_now = mde_at(&base, n, analysis.power(), &settings).ok();
    }
    match sample_size_per_arm(&base, analysis.mde(), analysis.power(), &settings) {
        Ok(needed) => {
            out.needed_per_arm = Some(needed);
            let short = (needed.ceil() - n).max(0.0);
            out.more_units_needed = whole(short * len_f64(spec.arms().len()));
        }
        Err(e) => out.note = Some(format!("cannot compute the sample size: {e}")),
    }
    Some(out)
}
