//! The Monte-Carlo calibration behind `liftlab calibrate`: measures, by seeded Monte Carlo, whether liftlab's statistics keep their promises.
//!
//! Every study runs in process on the real code: liftlab-stats' tests, intervals, confidence
//! sequences and power calculator, and liftlab-domain's hashing, assignment decisions, Thompson
//! machinery (`BanditState`, allocation periods, `decide`), `DriftMonitor` and report assembly
//! (`report::build`). Nothing is re-implemented here except drawing data from a known truth and
//! counting. Each run draws from its own generator, seeded from (seed, study, run), so the
//! figures do not depend on the number of threads.
//!
//! The figures and their targets:
//! - A/A false-positive rate of Welch's test at alpha: inside the central 99% binomial range
//!   of alpha for the number of runs.
//! - Coverage of the true lift by the 95% intervals (relative and absolute): 95% ± 1.5 pp.
//! - Peeking 20 times: naive Welch p-values inflate the false-positive rate above alpha, the
//!   sequential (always-valid) p-values keep it at or below alpha.
//! - Power at the spec's minimum detectable effect: within 3 pp of the power calculator.
//! - The decision (what the verdict reads), from real reports built by liftlab-domain's
//!   `report::build`: the default (sequential) spec's A/A false-positive rate over 20 looks at
//!   most alpha, beside a fixed-horizon spec peeked at the same looks (inflated) and read once
//!   at its horizon (about alpha); the Holm-adjusted decision intervals of a three-metric
//!   family cover their true lifts, one by one and all at once, at least 95% − 1.5 pp; a
//!   guardrail's harm test raises false alarms at most alpha under A/A and when the true harm
//!   equals `max_harm`, and its power at a stated harm is reported.
//! - Thompson sampling: regret over 5,000 tasks on a stationary 3-arm Bernoulli problem at
//!   most 30% of uniform allocation's; after an abrupt change, discounted Thompson sampling
//!   has less dynamic regret than undiscounted.
//! - Adaptive allocation (`calibrate/adaptive.rs`), decisions stratified by allocation
//!   period: bandit A/A with 2 and 3 identical arms at floors 0.01 and 0.05, the verdict's
//!   false-positive rate at most alpha (the decision is always-valid, so it is held to ≤ α
//!   rather than to the binomial range of a test that spends exactly α); a bandit and a ramp
//!   (90/10 then 50/50) under a time trend shared by both arms with a true effect, the
//!   stratified estimate's 95% interval covering "every unit on T against every unit on B,
//!   averaged over the run" 95% ± 1.5 pp, the decision's always-valid interval at least
//!   that, and naive pooling shown failing beside them.
//! - Drift: false alarms per 10,000 stationary events and the median delay to detect a 30%
//!   shift (reported; DESIGN.md sets no target).
//! - Effect drift: a 30% change in the treatment's advantage detected in at least 95% of runs
//!   within [`EFFECT_HORIZON`] outcomes per arm; a 30% level shift shared by both arms raises
//!   an effect alarm in at most 5% of runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context as _;
use liftlab_domain::drift::{effect, Detector, DriftMonitor};
use liftlab_domain::hash::{choose_weighted, hash_v2};
use liftlab_domain::report::{
    build as build_report, Decision as ReportDecision, EpochInfo, PeriodCount, Report, ReportInput,
    Verdict,
};
use liftlab_domain::spec::Correction;
use liftlab_domain::{
    decide, initial_period, AggKey, AggScope, AllocationPeriod, AssignRequest, BanditState,
    ExperimentSpec, ExperimentVersion, MetricAggregate, Outcome, Status, Transition,
};
use liftlab_stats::dist::t_ppf;
use liftlab_stats::{
    achieved_power, relative_lift, sample_size_per_arm, sequential, welch_absolute, Alternative,
    Baseline, Design, Moments, PowerSettings, SampleStats,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Binomial, Distribution, LogNormal};
use serde::Serialize;

use crate::intervals::{acceptance_range, clopper_pearson, count, poisson_interval};

mod adaptive;
mod bandit;
mod decision;
mod drift;
mod frequentist;
mod markdown;
use crate::progress;
use bandit::bandit_study;
use decision::{cuped_study, decision_aa_study, decision_coverage_study, decision_harm_study};
use drift::{drift_study, effect_drift_study};
use frequentist::{aa_study, coverage_study, peeking_study, power_study};
pub use markdown::markdown;

/// Median cycle time (minutes) of the simulated duration metric.
const CYCLE_MEDIAN: f64 = 40.0;
/// Log-scale sd of the duration metric: a right-skewed distribution (coefficient of variation ≈ 0.95).
const CYCLE_SIGMA: f64 = 0.8;
/// Escalation rate of the simulated binary metric.
const ESCALATION: f64 = 0.10;
/// Units per run in the A/A and coverage studies (hashed 50/50, so about half per arm).
const UNITS: usize = 1000;
/// True relative lift of the coverage study's duration metric (a 15% cycle-time reduction).
const COVERAGE_LIFT: f64 = -0.15;
/// True rate of the coverage study's binary metric in the treatment arm (+20% relative).
const COVERAGE_TREATMENT_RATE: f64 = 0.12;
/// Units in the peeking study, looked at every `PEEK_UNITS / PEEKS` units.
const PEEK_UNITS: usize = 2000;
/// Looks in the peeking study.
const PEEKS: usize = 20;
/// Baseline rate of the binary metric in the power study (a quality pass rate).
const POWER_RATE: f64 = 0.30;
/// Tasks per bandit run.
const BANDIT_TASKS: usize = 5000;
/// The stationary bandit problem: resolution rates of three model versions.
const BANDIT_RATES: [f64; 3] = [0.55, 0.60, 0.70];
/// A harder stationary problem (closer arms), reported without a target.
const BANDIT_RATES_HARD: [f64; 3] = [0.60, 0.65, 0.70];
/// The abrupt change: rates after `CHANGE_AT`, when the best arm degrades.
const BANDIT_RATES_AFTER: [f64; 3] = [0.55, 0.60, 0.40];
/// Task index of the abrupt change.
const CHANGE_AT: usize = 2500;
/// The discount of the discounted Thompson sampler (applied at every recomputation).
const DISCOUNT: f64 = 0.9;
/// Stationary events per drift run (after the reference window).
const DRIFT_EVENTS: usize = 10_000;
/// The relative shift of the mean the drift study detects.
const DRIFT_SHIFT: f64 = 0.30;

/// The treatment's true relative lift on cycle time before the effect changes (−30%).
const EFFECT_LIFT: f64 = -0.30;
/// The relative change of that advantage: −30% becomes −21%.
const EFFECT_CHANGE: f64 = 0.30;
/// The level factor of the shared shift (both arms' cycle times × 1.3).
const EFFECT_LEVEL_SHIFT: f64 = 1.30;
/// Stationary outcomes per arm before the change, counted from the start (the reference,
/// 20 windows of 100, is learned from the first 2,000).
const EFFECT_BEFORE: u64 = 3000;
/// Outcomes per arm after the change within which a detection counts.
const EFFECT_HORIZON: u64 = 10_000;
/// Outcomes per arm after the shared level shift over which effect alarms are counted: as
/// long as a detection of a real change is given, so the two rows speak of the same watch.
const EFFECT_LEVEL_HORIZON: u64 = EFFECT_HORIZON;

/// Units per arm added between two looks of the decision studies.
const DECISION_LOOK_UNITS: u64 = 100;
/// The arm keys of the decision studies' experiments: baseline, treatment.
const DECISION_ARMS: [&str; 2] = ["base", "ai"];
/// Units per arm at the single look of the fixed-horizon coverage study.
const FIXED_COVERAGE_UNITS: u64 = 1000;
/// Median cost per case of the coverage study's cost metric.
const COST_MEDIAN: f64 = 2.5;
/// Log-scale sd of the cost metric: heavier-tailed than cycle time (coefficient of variation ≈ 1.3).
const COST_SIGMA: f64 = 1.0;
/// Baseline resolution rate of the coverage study's binary metric.
const FAMILY_RATE: f64 = 0.30;
/// The relative harm the guardrail study's power is measured at (escalation 10% → 13%).
const HARM_LIFT: f64 = 0.30;
/// The tolerated harm (`max_harm`) of the guardrail tolerance study.
const MAX_HARM: f64 = 0.05;

/// One measured figure with its interval and target.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// A stable identifier for scripts and tests.
    pub id: &'static str,
    /// The study it belongs to.
    pub study: &'static str,
    /// What was measured, for a person.
    pub label: String,
    /// The measured value.
    pub value: f64,
    /// Its 95% interval (Clopper–Pearson for rates, t for means, order statistics for medians).
    pub low: f64,
    pub high: f64,
    /// The target, for a person; "reported" when there is none.
    pub target: String,
    /// Whether the target is met; `None` without a target.
    pub met: Option<bool>,
    /// Runs (or seeds) behind the figure.
    pub runs: u64,
    /// How the value is printed: a rate in %, or a plain number.
    #[serde(skip)]
    pub percent: bool,
}

/// Everything one calibration produced.
#[derive(Debug, Serialize)]
pub struct Calibration {
    pub seed: u64,
    pub runs: u64,
    pub bandit_runs: u64,
    pub drift_runs: u64,
    pub figures: Vec<Figure>,
    /// Runs in which a statistic could not be computed (counted as not significant / not covered).
    pub failed_computations: u64,
}

/// Runs every study.
pub fn calibrate(
    seed: u64,
    runs: u64,
    bandit_runs: u64,
    drift_runs: u64,
    threads: usize,
) -> anyhow::Result<Calibration> {
    let analysis = default_analysis()?;
    let mut figures = Vec::new();
    let mut failed = 0;
    let mut add = |(mut f, e): (Vec<Figure>, u64)| {
        figures.append(&mut f);
        failed += e;
    };
    let pool = Pool { seed, threads };
    add(aa_study(&pool, runs, analysis.alpha));
    add(coverage_study(&pool, runs, analysis.alpha));
    add(peeking_study(&pool, runs, analysis.alpha, analysis.tau));
    add(power_study(&pool, runs, &analysis)?);
    add(decision_aa_study(&pool, runs, analysis.alpha)?);
    add(decision_coverage_study(&pool, runs, analysis.alpha)?);
    add(decision_harm_study(&pool, runs, analysis.alpha)?);
    add(cuped_study(&pool, runs, analysis.alpha)?);
    add(bandit_study(&pool, bandit_runs)?);
    add(adaptive::adaptive_study(&pool, runs, analysis.alpha)?);
    add(drift_study(&pool, drift_runs)?);
    add(effect_drift_study(&pool, runs)?);
    Ok(Calibration {
        seed,
        runs,
        bandit_runs,
        drift_runs,
        figures,
        failed_computations: failed,
    })
}

/// The analysis settings a spec gets when it states none, read from liftlab-domain.
struct AnalysisDefaults {
    alpha: f64,
    power: f64,
    mde: f64,
    tau: f64,
}

fn default_analysis() -> anyhow::Result<AnalysisDefaults> {
    let spec = ExperimentSpec::parse(&serde_json::json!({
        "key": "calibration",
        "arms": [{"key": "a", "role": "baseline"}, {"key": "b", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"a": 0.5, "b": 0.5}},
        "metrics": [{"key": "m", "kind": "continuous", "direction": "increase", "role": "primary"}]
    }))
    .map_err(|e| anyhow::anyhow!("the calibration spec is invalid: {e}"))?;
    let a = spec.analysis();
    Ok(AnalysisDefaults {
        alpha: a.alpha(),
        power: a.power(),
        mde: a.mde(),
        tau: a.sequential_tuning(),
    })
}

/// Seeded, order-independent parallel runs.
struct Pool {
    seed: u64,
    threads: usize,
}

impl Pool {
    /// The generator of run `run` of study `study`.
    fn rng(&self, study: u64, run: u64) -> StdRng {
        StdRng::seed_from_u64(splitmix(
            self.seed ^ splitmix(study.wrapping_mul(0x9E37_79B9) ^ splitmix(run)),
        ))
    }

    /// Runs `f(run)` for every run on the pool's threads; results come back in run order.
    fn map<T: Send>(&self, runs: u64, label: &str, f: impl Fn(u64) -> T + Sync) -> Vec<T> {
        let bar = progress::bar(runs, label);
        let threads = u64::try_from(self.threads)
            .unwrap_or(1)
            .clamp(1, runs.max(1));
        let mut slots: Vec<(u64, T)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let f = &f;
                    let bar = &bar;
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        let mut run = t;
                        while run < runs {
                            out.push((run, f(run)));
                            bar.inc(1);
                            run += threads;
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        bar.finish_and_clear();
        slots.sort_by_key(|(run, _)| *run);
        slots.into_iter().map(|(_, t)| t).collect()
    }
}

/// SplitMix64's finalizer: spreads the bits of related seeds.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn cycle_time() -> LogNormal<f64> {
    // The parameters are constants that LogNormal accepts.
    LogNormal::new(CYCLE_MEDIAN.ln(), CYCLE_SIGMA).unwrap_or_else(|_| unreachable_dist())
}

/// Units per arm at the last of the decision studies' looks.
fn decision_horizon() -> u64 {
    DECISION_LOOK_UNITS * u64::try_from(PEEKS).unwrap_or(u64::MAX)
}

fn cost_dist() -> LogNormal<f64> {
    // The parameters are constants that LogNormal accepts.
    LogNormal::new(COST_MEDIAN.ln(), COST_SIGMA).unwrap_or_else(|_| unreachable_dist())
}

fn unreachable_dist() -> LogNormal<f64> {
    // LogNormal::new(0, 1) is always valid; this only keeps the code free of unwrap.
    LogNormal::new(0.0, 1.0).unwrap_or_else(|_| unreachable!("LogNormal(0, 1) is valid"))
}

/// The mean of the duration metric under `scale`: median·scale·exp(σ²/2).
fn cycle_mean(scale: f64) -> f64 {
    CYCLE_MEDIAN * scale * (CYCLE_SIGMA * CYCLE_SIGMA / 2.0).exp()
}

/// Which arm (0 = baseline, 1 = treatment) a unit is hashed into at 50/50, as a fixed experiment does.
fn hashed_arm(hash_seed: &str, unit: usize) -> usize {
    let h = hash_v2(hash_seed, &format!("u{unit}"));
    choose_weighted(h, &[0.5, 0.5], 1.0).unwrap_or(0)
}

/// One simulated two-arm experiment: per-arm moments of a metric.
struct TwoArms {
    arms: [Moments; 2],
}

impl TwoArms {
    fn new() -> Self {
        Self {
            arms: [Moments::new(), Moments::new()],
        }
    }

    fn stats(&self) -> (SampleStats, SampleStats) {
        (
            SampleStats::from(&self.arms[0]),
            SampleStats::from(&self.arms[1]),
        )
    }

    fn n_total(&self) -> f64 {
        count(self.arms[0].n() + self.arms[1].n())
    }
}

/// A rate figure from a count of events among runs.
fn rate_figure(
    id: &'static str,
    study: &'static str,
    label: String,
    events: u64,
    runs: u64,
    target: String,
    met: impl Fn(f64, f64, f64) -> bool,
) -> Figure {
    let value = count(events) / count(runs);
    let (low, high) = clopper_pearson(events, runs, 0.95);
    Figure {
        id,
        study,
        label,
        value,
        low,
        high,
        met: Some(met(value, low, high)),
        target,
        runs,
        percent: true,
    }
}

/// A mean figure with its 95% t interval.
fn mean_figure(
    id: &'static str,
    study: &'static str,
    label: String,
    xs: &[f64],
    target: String,
    met: Option<bool>,
    percent: bool,
) -> Figure {
    let (value, low, high) = mean_ci(xs);
    Figure {
        id,
        study,
        label,
        value,
        low,
        high,
        target,
        met,
        runs: u64::try_from(xs.len()).unwrap_or(u64::MAX),
        percent,
    }
}

/// A reported median (no target) of `xs` with its order-statistics interval, over `runs` runs.
fn median_figure(
    id: &'static str,
    study: &'static str,
    label: String,
    xs: Vec<f64>,
    runs: u64,
) -> Figure {
    let (value, low, high) = median_ci(xs);
    Figure {
        id,
        study,
        label,
        value,
        low,
        high,
        target: "reported".to_string(),
        met: None,
        runs,
        percent: false,
    }
}

/// The mean of `xs` and its 95% t interval.
fn mean_ci(xs: &[f64]) -> (f64, f64, f64) {
    let mut m = Moments::new();
    xs.iter().for_each(|&x| m.push(x));
    let n = count(m.n());
    if n < 2.0 {
        return (m.mean(), f64::NEG_INFINITY, f64::INFINITY);
    }
    let half = t_ppf(0.975, n - 1.0) * m.sd() / n.sqrt();
    (m.mean(), m.mean() - half, m.mean() + half)
}

/// The runs whose event happened (`Ok(true)`); runs whose computation failed are added to `failed`.
fn tally<'a, E: 'a>(runs: impl IntoIterator<Item = &'a Result<bool, E>>, failed: &mut u64) -> u64 {
    let mut events = 0;
    for run in runs {
        match run {
            Ok(true) => events += 1,
            Ok(false) => {}
            Err(_) => *failed += 1,
        }
    }
    events
}

/// A running two-arm experiment ("base" against "ai") and the other inputs `report::build`
/// needs besides the aggregates: the decision studies build real reports with it.
struct Reporter {
    version: ExperimentVersion,
    periods: Vec<AllocationPeriod>,
    epochs: Vec<EpochInfo>,
}

impl Reporter {
    /// A running experiment with `metrics` (spec JSON) and `analysis` settings.
    fn new(
        key: &str,
        metrics: serde_json::Value,
        analysis: serde_json::Value,
    ) -> anyhow::Result<Self> {
        let spec = ExperimentSpec::parse(&serde_json::json!({
            "key": key,
            "arms": [
                {"key": DECISION_ARMS[0], "role": "baseline"},
                {"key": DECISION_ARMS[1], "role": "treatment"}
            ],
            "allocation": {"policy": "fixed", "weights": {DECISION_ARMS[0]: 0.5, DECISION_ARMS[1]: 0.5}},
            "metrics": metrics,
            "analysis": analysis
        }))
        .map_err(|e| anyhow::anyhow!("the calibration spec {key} is invalid: {e}"))?;
        let periods = vec![initial_period(&spec, 0)];
        let (version, epochs) = started(spec)?;
        Ok(Self {
            version,
            periods,
            epochs,
        })
    }

    /// The report of one look: each metric's baseline and treatment moments, folded into the
    /// overall aggregates the store would hold, with every unit assigned.
    fn report(&self, data: &[(&str, &TwoArms)]) -> Report {
        let mut aggregates = Vec::with_capacity(2 * data.len());
        let mut assigned = [0_u64; 2];
        for (metric, two) in data {
            for (i, moments) in two.arms.iter().enumerate() {
                assigned[i] = assigned[i].max(moments.n());
                aggregates.push((
                    AggKey {
                        epoch: 0,
                        arm: DECISION_ARMS[i].to_string(),
                        metric: (*metric).to_string(),
                        scope: AggScope::Overall,
                    },
                    MetricAggregate {
                        moments: *moments,
                        ipw_weight: 0.0,
                        ipw_weighted_sum: 0.0,
                    },
                ));
            }
        }
        self.build(&aggregates, assigned)
    }

    /// The report of the given aggregates, with `assigned` units per arm.
    fn build(&self, aggregates: &[(AggKey, MetricAggregate)], assigned: [u64; 2]) -> Report {
        let assignments: Vec<PeriodCount> = DECISION_ARMS
            .iter()
            .zip(assigned)
            .map(|(arm, count)| PeriodCount {
                period: 0,
                arm: (*arm).to_string(),
                count,
            })
            .collect();
        build_report(&ReportInput {
            version: &self.version,
            epoch: 0,
            aggregates,
            tallies: &[],
            assignments: &assignments,
            periods: &self.periods,
            epochs: &self.epochs,
            drift: None,
            pause_reason: None,
        })
    }
}

/// A calibration experiment started at time 0, with its one epoch.
fn started(spec: ExperimentSpec) -> anyhow::Result<(ExperimentVersion, Vec<EpochInfo>)> {
    let version = ExperimentVersion::created(spec, 0)
        .transitioned(Transition::Start, None, 0)
        .map_err(|e| anyhow::anyhow!("the calibration experiment cannot start: {e}"))?;
    let epochs = vec![EpochInfo {
        epoch: 0,
        reason: "created".to_string(),
        started_at: 0,
        version: version.version,
    }];
    Ok((version, epochs))
}

/// The assignment the domain's `decide` gives `unit` under `period` at `now` (Unix ms), with
/// the index of its arm.
fn serve(
    spec: &ExperimentSpec,
    period: &AllocationPeriod,
    unit: &str,
    now: i64,
) -> anyhow::Result<(liftlab_domain::Assignment, usize)> {
    let request = AssignRequest::new(unit.to_string(), None, BTreeMap::new())
        .map_err(|e| anyhow::anyhow!("invalid assignment request: {e}"))?;
    let assignment = decide(
        spec,
        Status::Running,
        1,
        0,
        period,
        &request,
        String::new(),
        now,
    );
    let arm = spec
        .arm_index(&assignment.arm)
        .context("decide returned an unknown arm")?;
    Ok((assignment, arm))
}

/// The verdict and decision of `metric`'s treatment comparison in `report`; `Err` when the
/// comparison has enough evidence but no decision (a computation failed) or is missing.
fn decided<'a>(
    report: &'a Report,
    metric: &str,
) -> Result<(Verdict, Option<&'a ReportDecision>), ()> {
    let c = report
        .metrics
        .iter()
        .find(|m| m.key == metric)
        .and_then(|m| m.comparisons.first())
        .ok_or(())?;
    match (c.verdict, c.decision.as_ref()) {
        (Verdict::Collecting, d) => Ok((Verdict::Collecting, d)),
        (_, None) => Err(()),
        (v, d) => Ok((v, d)),
    }
}

/// Adds `n` units per arm of a metric to `data`: `draw(arm, rng)` gives one unit's value.
fn add_units(
    data: &mut TwoArms,
    n: u64,
    rng: &mut StdRng,
    mut draw: impl FnMut(usize, &mut StdRng) -> f64,
) {
    for arm in 0..2 {
        for _ in 0..n {
            data.arms[arm].push(draw(arm, rng));
        }
    }
}

/// A 0/1 value with probability `p` of 1.
fn bernoulli(rng: &mut StdRng, p: f64) -> f64 {
    f64::from(u8::from(rng.random_bool(p)))
}

/// Metric JSON for a decision spec: (key, kind, direction, role), plus `max_harm` when given.
fn metric_json(
    key: &str,
    kind: &str,
    direction: &str,
    role: &str,
    max_harm: Option<f64>,
) -> serde_json::Value {
    let mut m = serde_json::json!({"key": key, "kind": kind, "direction": direction, "role": role});
    if let Some(h) = max_harm {
        m["max_harm"] = serde_json::json!(h);
    }
    m
}

/// A rate figure that has no target (the `met` of [`rate_figure`] is dropped).
fn reported_rate(
    id: &'static str,
    study: &'static str,
    label: String,
    events: u64,
    runs: u64,
) -> Figure {
    Figure {
        met: None,
        ..rate_figure(
            id,
            study,
            label,
            events,
            runs,
            "reported".to_string(),
            |_, _, _| true,
        )
    }
}

/// A 95% distribution-free interval of the median from order statistics (binomial ranks).
fn median_ci(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let median = if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    };
    let n64 = u64::try_from(n).unwrap_or(u64::MAX);
    let (lo, hi) = acceptance_range(n64, 0.5, 0.95);
    let at = |k: u64| xs[usize::try_from(k).unwrap_or(n - 1).min(n - 1)];
    (median, at(lo.saturating_sub(1)), at(hi))
}

/// A number with its sign, the minus as a typographic minus (U+2212).
fn signed(x: f64, decimals: usize) -> String {
    format!("{x:+.decimals$}").replace('-', "\u{2212}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_do_not_depend_on_the_number_of_threads() {
        let one = Pool {
            seed: 9,
            threads: 1,
        }
        .map(17, "t", |run| {
            Pool {
                seed: 9,
                threads: 1,
            }
            .rng(1, run)
            .random::<u64>()
        });
        let four = Pool {
            seed: 9,
            threads: 4,
        }
        .map(17, "t", |run| {
            Pool {
                seed: 9,
                threads: 4,
            }
            .rng(1, run)
            .random::<u64>()
        });
        assert_eq!(one, four);
    }

    #[test]
    fn median_interval_brackets_the_median() {
        let xs: Vec<f64> = (1..=101).map(f64::from).collect();
        let (m, lo, hi) = median_ci(xs);
        assert_eq!(m, 51.0);
        assert!(lo < m && m < hi, "{lo} < {m} < {hi}");
    }

    #[test]
    fn mean_interval_is_the_t_interval() {
        // scipy.stats.t.interval(0.95, 4, loc=3, scale=stats.sem([1,2,3,4,5])) = (1.0367568385224428, 4.963243161477557).
        let (m, lo, hi) = mean_ci(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(m, 3.0);
        assert!(
            (lo - 1.036_756_838_522_442_8).abs() < 1e-6
                && (hi - 4.963_243_161_477_557).abs() < 1e-6
        );
    }
}
