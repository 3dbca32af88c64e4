//! The results report: everything DESIGN.md's results JSON shows, assembled purely from aggregates.
//!
//! [`build`] takes what the caller gathered from the store ([`ReportInput`]: the experiment
//! version, the epoch's per-arm aggregates and counters, assignment counts per allocation
//! period, the periods, the epochs and the drift monitor) and returns a typed [`Report`] whose
//! JSON is the shape every client relies on. It never sees an event: its cost is
//! O(arms × metrics × (segment values + days)), whatever the number of recorded outcomes.
//!
//! Conventions (the numbers are checkable against scipy and gbstats):
//! - per arm, `n` is the number of units with a value for the metric, `mean` their mean and
//!   `sd` the sample standard deviation (n − 1); binary metrics are means of 0/1 values;
//! - `absolute` and `p_value` are Welch's t-test at the spec's alpha (two-sided), `relative`
//!   is the delta-method lift (mean_T − mean_B)/|mean_B|, `bayes` is gbstats' Gaussian model
//!   on the relative lift under a flat prior, `sequential` is the Waudby-Smith confidence
//!   sequence on the absolute difference (present when the spec asks for it, or for guardrails
//!   when it asks to pause on harm);
//! - `p_value_adjusted` applies the spec's correction (none, Holm or Benjamini–Hochberg) across
//!   every treatment-versus-baseline comparison of every metric in the report;
//! - `verdict` is `better` or `worse` when the adjusted p-value is below alpha (the sequential
//!   one, adjusted the same way, when the spec asks for sequential analysis), read through the
//!   metric's direction, and `inconclusive` otherwise.

mod compare;
mod csv;
mod health;
mod money;
mod segments;
pub mod text;
mod timeline;
mod types;

#[cfg(test)]
mod decision_tests;
#[cfg(test)]
mod stratified_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::drift::DriftMonitor;
use crate::lifecycle::ExperimentVersion;
use liftlab_stats::CoMoments;

use crate::model::{
    co_moments, AggKey, AggScope, AllocationPeriod, HandledBy, MetricAggregate, Millis,
};
use crate::spec::{ExperimentSpec, MetricRole};

pub use compare::{MIN_EACH_WAY, MIN_UNITS_PER_ARM, MIN_UNITS_PER_STRATUM};
pub use text::format_ts;
pub use timeline::{timeline, Bucket, HOURLY_SPAN_HOURS};
pub use types::*;

/// What one arm did in the epoch (the store's per-arm counters).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArmTally {
    /// The arm key.
    pub arm: String,
    /// Units with at least one outcome in the epoch.
    pub units: u64,
    /// Outcomes recorded in the epoch.
    pub outcomes: u64,
    /// Outcomes by who handled them (outcomes that did not say are not counted here).
    pub handled_by: BTreeMap<HandledBy, u64>,
}

/// Units one allocation period placed into one arm during the epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodCount {
    /// The allocation period.
    pub period: u64,
    /// The arm key.
    pub arm: String,
    /// Units assigned (units in the experiment only).
    pub count: u64,
}

/// One analysis epoch of the experiment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochInfo {
    /// 0 for the first epoch; one more per re-baseline.
    pub epoch: u64,
    /// Why the epoch was started.
    pub reason: String,
    /// When it started.
    pub started_at: Millis,
    /// The spec version in force when it started.
    pub version: u64,
}

/// Everything [`build`] needs, gathered by the caller for one experiment and one epoch.
#[derive(Clone, Copy, Debug)]
pub struct ReportInput<'a> {
    /// The experiment version the report covers (spec, status, version number).
    pub version: &'a ExperimentVersion,
    /// The analysis epoch reported on.
    pub epoch: u64,
    /// The epoch's aggregates; entries of other epochs are ignored.
    pub aggregates: &'a [(AggKey, MetricAggregate)],
    /// Per-arm counters of the epoch.
    pub tallies: &'a [ArmTally],
    /// Units assigned during the epoch, per allocation period and arm.
    pub assignments: &'a [PeriodCount],
    /// The experiment's allocation periods.
    pub periods: &'a [AllocationPeriod],
    /// All epochs of the experiment, oldest first.
    pub epochs: &'a [EpochInfo],
    /// The epoch's drift monitor, if drift is monitored.
    pub drift: Option<&'a DriftMonitor>,
    /// Why the experiment is paused, when it is (from the version that paused it).
    pub pause_reason: Option<&'a str>,
}

/// The aggregates of one arm and metric, with their scopes.
type Scoped<'a> = Vec<(&'a AggScope, &'a MetricAggregate)>;

/// The aggregates of one epoch, indexed by arm, then metric.
pub(crate) struct AggIndex<'a> {
    map: BTreeMap<&'a str, BTreeMap<&'a str, Scoped<'a>>>,
}

impl<'a> AggIndex<'a> {
    fn new(epoch: u64, aggregates: &'a [(AggKey, MetricAggregate)]) -> Self {
        let mut map: BTreeMap<&str, BTreeMap<&str, Vec<_>>> = BTreeMap::new();
        for (key, agg) in aggregates.iter().filter(|(k, _)| k.epoch == epoch) {
            map.entry(key.arm.as_str())
                .or_default()
                .entry(key.metric.as_str())
                .or_default()
                .push((&key.scope, agg));
        }
        Self { map }
    }

    /// The overall aggregate of `metric` in `arm` (empty when nothing was recorded).
    pub(crate) fn overall(&self, arm: &str, metric: &str) -> MetricAggregate {
        self.scoped(arm, metric)
            .find(|(s, _)| matches!(s, AggScope::Overall))
            .map(|(_, a)| *a)
            .unwrap_or_default()
    }

    /// The aggregate of `metric` in `arm` under `scope` (empty when nothing was recorded).
    pub(crate) fn get(&self, arm: &str, metric: &str, scope: &AggScope) -> MetricAggregate {
        self.scoped(arm, metric)
            .find(|(s, _)| *s == scope)
            .map(|(_, a)| *a)
            .unwrap_or_default()
    }

    /// The (x, y) co-moments of a paired metric (a covariate or a ratio) in `arm`.
    pub(crate) fn paired(&self, arm: &str, metric: &str) -> CoMoments {
        let part = |scope| self.get(arm, metric, &scope).moments;
        co_moments(
            &part(AggScope::Overall),
            &part(AggScope::Paired),
            &part(AggScope::PairSum),
        )
    }

    /// The (x, y) co-moments of a ratio metric's units in `arm` assigned in allocation period
    /// `period`.
    pub(crate) fn paired_in_period(&self, arm: &str, metric: &str, period: u64) -> CoMoments {
        let part = |scope| self.get(arm, metric, &scope).moments;
        co_moments(
            &part(AggScope::Period(period)),
            &part(AggScope::PeriodPaired(period)),
            &part(AggScope::PeriodPairSum(period)),
        )
    }

    /// Every aggregate of `metric` in `arm`, with its scope.
    pub(crate) fn scoped(
        &self,
        arm: &str,
        metric: &str,
    ) -> impl Iterator<Item = (&'a AggScope, &'a MetricAggregate)> + '_ {
        self.map
            .get(arm)
            .and_then(|metrics| metrics.get(metric))
            .into_iter()
            .flat_map(|v| v.iter().copied())
    }
}

/// Assembles the report of one epoch from aggregates; never fails.
///
/// Sections that cannot be computed yet (too few units, a zero baseline, no ROI settings)
/// come out as `null` with a note, so the shape stays the same from the first outcome on.
pub fn build(input: &ReportInput<'_>) -> Report {
    let version = input.version;
    let spec = &version.spec;
    let index = AggIndex::new(input.epoch, input.aggregates);

    let (arms, srm, allocation) = health::arms_and_srm(spec, input);
    let attrition = health::attrition(spec, &arms, input.tallies);
    let bandit = spec.allocation().thompson().is_some();
    let stratify = bandit || allocation_changed(input.assignments);
    let metrics = compare::metrics(spec, &index, stratify);
    let analysis = analysis_summary(spec, &arms, stratify);
    let bandit_leaderboard = bandit.then(|| compare::leaderboard(spec, &index)).flatten();
    let featured = compare::featured_treatment(spec, &metrics);
    let guardrails = compare::guardrails(spec, &metrics);
    let harm = compare::harm(&guardrails);
    let power = health::power(spec, &index);
    let roi = money::roi(spec, &metrics, input.tallies, featured.as_deref());
    let productivity = money::productivity(spec, &index, input.tallies);
    let segments = segments::segments(spec, &index);
    let drift = drift_entries(input);
    let effect_drift = effect_drift_entries(input);
    let epochs = epoch_entries(input);
    let timeline = timeline::timeline(spec, input.epoch, input.aggregates);

    let mut report = Report {
        experiment: spec.key().to_string(),
        name: spec.name().to_string(),
        version: version.version,
        status: version.status,
        epoch: input.epoch,
        policy: spec.allocation().policy().to_string(),
        verdict: String::new(),
        featured_arm: featured,
        pause_reason: input.pause_reason.map(str::to_string),
        warnings: Vec::new(),
        arms,
        srm,
        attrition,
        analysis,
        metrics,
        guardrails,
        harm,
        drift,
        effect_drift,
        roi,
        productivity,
        power,
        allocation,
        bandit,
        stratified: stratify,
        bandit_leaderboard,
        segments,
        epochs,
        timeline,
    };
    report.warnings = text::warnings(spec, &report);
    report.verdict = text::verdict(spec, &report);
    report
}

/// The first guardrail harmed in a treatment, exactly as [`build`] reports it in `harm`, from
/// only the inputs the harm test reads: the aggregates of [`harm_keys`] and the assignment
/// counts. It is what `analysis.auto_pause_on_harm` acts on (see [`crate::record`]).
pub fn harm_of(
    spec: &ExperimentSpec,
    epoch: u64,
    aggregates: &[(AggKey, MetricAggregate)],
    assignments: &[PeriodCount],
) -> Option<Harm> {
    let index = AggIndex::new(epoch, aggregates);
    let stratify = spec.allocation().thompson().is_some() || allocation_changed(assignments);
    let metrics = compare::metrics(spec, &index, stratify);
    compare::harm(&compare::guardrails(spec, &metrics))
}

/// The aggregates of one arm that the decisions (and so the harm test) read in an epoch:
/// every metric's `Overall`, `Paired` and `PairSum` scopes (covariates and ratios), and its
/// `Period` scope of each allocation period up to `last_period` (stratified estimates), with
/// `PeriodPaired` and `PeriodPairSum` for a ratio metric.
pub fn harm_keys(spec: &ExperimentSpec, epoch: u64, arm: &str, last_period: u64) -> Vec<AggKey> {
    let mut keys = Vec::new();
    for m in spec.metrics() {
        let pooled = [AggScope::Overall, AggScope::Paired, AggScope::PairSum];
        let periods = (0..=last_period).flat_map(|p| {
            let pairs = m.ratio().is_some();
            [
                Some(AggScope::Period(p)),
                pairs.then_some(AggScope::PeriodPaired(p)),
                pairs.then_some(AggScope::PeriodPairSum(p)),
            ]
            .into_iter()
            .flatten()
        });
        for scope in pooled.into_iter().chain(periods) {
            keys.push(AggKey {
                epoch,
                arm: arm.to_string(),
                metric: m.key().to_string(),
                scope,
            });
        }
    }
    keys
}

/// Whether units were assigned in more than one allocation period during the epoch (weights
/// changed: a bandit's recomputation, or a fixed policy's ramp).
fn allocation_changed(assignments: &[PeriodCount]) -> bool {
    let mut periods = assignments.iter().filter(|c| c.count > 0).map(|c| c.period);
    periods
        .next()
        .is_some_and(|first| periods.any(|p| p != first))
}

/// How the decisions are made, and whether a fixed-horizon answer is final yet.
fn analysis_summary(spec: &ExperimentSpec, arms: &[ArmSummary], stratify: bool) -> AnalysisSummary {
    let analysis = spec.analysis();
    let method = compare::report_method(spec, stratify);
    let family: Vec<String> = spec
        .metrics()
        .iter()
        .filter(|m| m.role() != MetricRole::Guardrail)
        .map(|m| m.key().to_string())
        .collect();
    let units = arms.iter().map(|a| a.assigned).sum();
    let planned_units = analysis
        .planned_units()
        .filter(|_| method == DecisionMethod::Fixed);
    AnalysisSummary {
        method,
        alpha: analysis.alpha(),
        correction: analysis.correction(),
        family_size: family.len() * spec.treatments().count(),
        family,
        planned_units,
        units,
        final_answer: method == DecisionMethod::Fixed && planned_units.is_some_and(|p| units >= p),
    }
}

/// Level detections: workload drift, which never re-baselines by itself.
fn drift_entries(input: &ReportInput<'_>) -> Vec<DriftEntry> {
    let Some(monitor) = input.drift else {
        return Vec::new();
    };
    let action = DriftAction::WorkloadDrift;
    monitor
        .detections()
        .iter()
        .map(|d| DriftEntry {
            metric: d.metric.clone(),
            arm: d.arm.clone(),
            detected_at: format_ts(d.detected_at),
            detected_at_ms: d.detected_at,
            direction: d.direction,
            detector: d.detector,
            action,
        })
        .collect()
}

/// Effect detections: a re-baseline is proposed, or was done when a later epoch exists.
fn effect_drift_entries(input: &ReportInput<'_>) -> Vec<EffectDriftEntry> {
    let Some(monitor) = input.drift else {
        return Vec::new();
    };
    let superseded = input.epochs.iter().any(|e| e.epoch > input.epoch);
    let action = if superseded {
        DriftAction::Rebaselined
    } else {
        DriftAction::RebaselineProposed
    };
    monitor
        .effect_detections()
        .iter()
        .map(|d| EffectDriftEntry {
            metric: d.metric.clone(),
            arm: d.arm.clone(),
            baseline: d.baseline.clone(),
            detected_at: format_ts(d.detected_at),
            detected_at_ms: d.detected_at,
            effect_before: d.effect_before,
            effect_after: d.effect_after,
            action,
        })
        .collect()
}

fn epoch_entries(input: &ReportInput<'_>) -> Vec<EpochEntry> {
    input
        .epochs
        .iter()
        .map(|e| EpochEntry {
            epoch: e.epoch,
            reason: e.reason.clone(),
            started_at: format_ts(e.started_at),
            started_at_ms: e.started_at,
            version: e.version,
            current: e.epoch == input.epoch,
        })
        .collect()
}
