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
use crate::progress;

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

fn aa_study(pool: &Pool, runs: u64, alpha: f64) -> (Vec<Figure>, u64) {
    // Each run: UNITS units hashed 50/50 with a fresh hash seed, both arms from the same truth.
    let results = pool.map(runs, "A/A", |run| {
        let mut rng = pool.rng(1, run);
        let seed = format!("aa-{}-{run}", pool.seed);
        let (mut duration, mut binary) = (TwoArms::new(), TwoArms::new());
        let dist = cycle_time();
        for unit in 0..UNITS {
            let arm = hashed_arm(&seed, unit);
            duration.arms[arm].push(dist.sample(&mut rng));
            binary.arms[arm].push(f64::from(u8::from(rng.random_bool(ESCALATION))));
        }
        [&duration, &binary].map(|d| {
            let (b, t) = d.stats();
            welch_absolute(&b, &t, alpha, Alternative::TwoSided).map(|e| e.p_value < alpha)
        })
    });
    let mut failed = 0;
    let mut figures = Vec::new();
    let (lo, hi) = acceptance_range(runs, alpha, 0.99);
    let target = format!(
        "in the central 99% binomial range of {:.0}% for {runs} runs: {:.2}%–{:.2}%",
        alpha * 100.0,
        count(lo) / count(runs) * 100.0,
        count(hi) / count(runs) * 100.0
    );
    for (i, (id, label)) in [
        (
            "aa_fpr_duration",
            "A/A false-positive rate, Welch, cycle time (log-normal, ~500 units per arm)",
        ),
        (
            "aa_fpr_binary",
            "A/A false-positive rate, Welch, escalation (10%, ~500 units per arm)",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let events = tally(results.iter().map(|r| &r[i]), &mut failed);
        figures.push(rate_figure(
            id,
            "aa",
            label.to_string(),
            events,
            runs,
            target.clone(),
            |_, _, _| lo <= events && events <= hi,
        ));
    }
    (figures, failed)
}

fn coverage_study(pool: &Pool, runs: u64, alpha: f64) -> (Vec<Figure>, u64) {
    let scale = 1.0 + COVERAGE_LIFT;
    let true_abs = cycle_mean(scale) - cycle_mean(1.0);
    let true_rel_binary = (COVERAGE_TREATMENT_RATE - ESCALATION) / ESCALATION;
    let results = pool.map(runs, "coverage", |run| {
        let mut rng = pool.rng(2, run);
        let seed = format!("coverage-{}-{run}", pool.seed);
        let (mut duration, mut binary) = (TwoArms::new(), TwoArms::new());
        let dist = cycle_time();
        for unit in 0..UNITS {
            let arm = hashed_arm(&seed, unit);
            let factor = if arm == 1 { scale } else { 1.0 };
            duration.arms[arm].push(dist.sample(&mut rng) * factor);
            let p = if arm == 1 {
                COVERAGE_TREATMENT_RATE
            } else {
                ESCALATION
            };
            binary.arms[arm].push(f64::from(u8::from(rng.random_bool(p))));
        }
        let (b, t) = duration.stats();
        let rel = relative_lift(&b, &t, alpha, Alternative::TwoSided)
            .map(|e| e.ci_low <= COVERAGE_LIFT && COVERAGE_LIFT <= e.ci_high);
        let abs = welch_absolute(&b, &t, alpha, Alternative::TwoSided)
            .map(|e| e.ci_low <= true_abs && true_abs <= e.ci_high);
        let (b, t) = binary.stats();
        let bin = relative_lift(&b, &t, alpha, Alternative::TwoSided)
            .map(|e| e.ci_low <= true_rel_binary && true_rel_binary <= e.ci_high);
        [rel, abs, bin]
    });
    let level = 1.0 - alpha;
    let target = format!("{:.1}% ± 1.5 pp", level * 100.0);
    let mut failed = 0;
    let mut figures = Vec::new();
    for (i, (id, label)) in [
        (
            "coverage_relative_duration",
            "95% CI covers the true relative lift (−15% cycle time), delta method".to_string(),
        ),
        (
            "coverage_absolute_duration",
            format!(
                "95% CI covers the true absolute effect ({} min), Welch",
                signed(true_abs, 2)
            ),
        ),
        (
            "coverage_relative_binary",
            "95% CI covers the true relative lift (escalation 10% → 12%), delta method".to_string(),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let events = tally(results.iter().map(|r| &r[i]), &mut failed);
        figures.push(rate_figure(
            id,
            "coverage",
            label,
            events,
            runs,
            target.clone(),
            |v, _, _| (v - level).abs() <= 0.015,
        ));
    }
    (figures, failed)
}

fn peeking_study(pool: &Pool, runs: u64, alpha: f64, tau: f64) -> (Vec<Figure>, u64) {
    let step = PEEK_UNITS / PEEKS;
    let results = pool.map(runs, "peeking", |run| {
        let mut rng = pool.rng(3, run);
        let seed = format!("peek-{}-{run}", pool.seed);
        let dist = cycle_time();
        let mut data = TwoArms::new();
        let (mut naive, mut seq, mut failed) = (false, false, 0_u64);
        for unit in 0..PEEK_UNITS {
            let arm = hashed_arm(&seed, unit);
            data.arms[arm].push(dist.sample(&mut rng));
            if (unit + 1) % step != 0 {
                continue;
            }
            let (b, t) = data.stats();
            match welch_absolute(&b, &t, alpha, Alternative::TwoSided) {
                Ok(e) => {
                    naive |= e.p_value < alpha;
                    match sequential(
                        e.estimate,
                        e.se,
                        data.n_total(),
                        alpha,
                        tau,
                        Alternative::TwoSided,
                    ) {
                        Ok(s) => seq |= s.p_value < alpha,
                        Err(_) => failed += 1,
                    }
                }
                Err(_) => failed += 1,
            }
        }
        (naive, seq, failed)
    });
    let naive = results.iter().filter(|r| r.0).count();
    let seq = results.iter().filter(|r| r.1).count();
    let failed = results.iter().map(|r| r.2).sum();
    let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let a = alpha;
    let figures = vec![
        rate_figure(
            "peeking_naive",
            "peeking",
            format!("A/A, {PEEKS} looks (every {step} units): any naive Welch p < {a}"),
            as_u64(naive),
            runs,
            format!(
                "inflated above {:.0}% (the reason to use sequential tests)",
                a * 100.0
            ),
            move |_, low, _| low > a,
        ),
        rate_figure(
            "peeking_sequential",
            "peeking",
            format!("A/A, {PEEKS} looks: any sequential (always-valid) p < {a}, τ = {tau}"),
            as_u64(seq),
            runs,
            format!("≤ {:.0}%", a * 100.0),
            move |v, _, _| v <= a,
        ),
    ];
    (figures, failed)
}

fn power_study(
    pool: &Pool,
    runs: u64,
    analysis: &AnalysisDefaults,
) -> anyhow::Result<(Vec<Figure>, u64)> {
    let settings = PowerSettings {
        alpha: analysis.alpha,
        alternative: Alternative::TwoSided,
        design: Design::Fixed,
        relative: true,
    };
    let mde = analysis.mde;
    let mut figures = Vec::new();
    let mut failed = 0;
    // A duration metric that the AI arm lowers by the mde, and a pass rate it raises by the mde.
    let duration_mean = cycle_mean(1.0);
    let duration_var = duration_mean * duration_mean * ((CYCLE_SIGMA * CYCLE_SIGMA).exp() - 1.0);
    let cases = [
        (
            "power_duration",
            "cycle time (log-normal)",
            Baseline {
                mean: duration_mean,
                variance: duration_var,
            },
            -mde,
        ),
        (
            "power_binary",
            "pass rate (30%)",
            Baseline::proportion(POWER_RATE),
            mde,
        ),
    ];
    for (index, (id, what, baseline, effect)) in cases.into_iter().enumerate() {
        let n_real = sample_size_per_arm(&baseline, effect, analysis.power, &settings)
            .map_err(|e| anyhow::anyhow!("the power calculator failed for {what}: {e}"))?;
        let n = n_real.ceil();
        let promise = achieved_power(&baseline, effect, n, &settings)
            .map_err(|e| anyhow::anyhow!("the power calculator failed for {what}: {e}"))?;
        // n is a whole number of at most a few hundred thousand units here.
        let n_units = n as u64;
        let study = 4 + u64::try_from(index).unwrap_or(0);
        let results = pool.map(runs, "power", |run| {
            let mut rng = pool.rng(study, run);
            let mut data = TwoArms::new();
            if index == 0 {
                let dist = cycle_time();
                for arm in 0..2 {
                    let factor = if arm == 1 { 1.0 + effect } else { 1.0 };
                    for _ in 0..n_units {
                        data.arms[arm].push(dist.sample(&mut rng) * factor);
                    }
                }
            } else {
                for arm in 0..2 {
                    let p = if arm == 1 {
                        POWER_RATE * (1.0 + effect)
                    } else {
                        POWER_RATE
                    };
                    let successes = Binomial::new(n_units, p).map_or(0, |d| d.sample(&mut rng));
                    // Σx = Σx² = successes for 0/1 values.
                    data.arms[arm] =
                        Moments::from_sums(n_units, count(successes), count(successes));
                }
            }
            let (b, t) = data.stats();
            welch_absolute(&b, &t, settings.alpha, Alternative::TwoSided)
                .map(|e| e.p_value < settings.alpha && e.estimate.signum() == effect.signum())
        });
        let events = tally(&results, &mut failed);
        let label = format!(
            "power at mde {}% on {what}, {n_units} units per arm (calculator promises {:.1}%)",
            signed(effect * 100.0, 0),
            promise * 100.0
        );
        figures.push(rate_figure(
            id,
            "power",
            label,
            events,
            runs,
            format!("{:.1}% ± 3 pp", promise * 100.0),
            |v, _, _| (v - promise).abs() <= 0.03,
        ));
    }
    Ok((figures, failed))
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

/// What one run of the decision A/A study saw, per metric (cycle time, escalation): whether
/// the sequential verdict was ever better or worse over the looks, the same for the
/// fixed-horizon verdict, and the fixed-horizon verdict at the planned horizon (the last look).
type DecisionAaRun = ([[bool; 3]; 2], u64);

/// The decision's A/A false-positive rate under 20 looks: the default spec (sequential)
/// against a fixed-horizon spec peeked at the same looks.
fn decision_aa_study(pool: &Pool, runs: u64, alpha: f64) -> anyhow::Result<(Vec<Figure>, u64)> {
    let horizon = decision_horizon();
    let metrics = [
        metric_json("cycle_time", "duration", "decrease", "primary", None),
        metric_json("escalated", "binary", "decrease", "primary", None),
    ];
    let keys = ["cycle_time", "escalated"];
    let fixed = serde_json::json!({"sequential": false, "planned_units": 2 * horizon});
    let mut reporters = Vec::new();
    for metric in &metrics {
        reporters.push([
            Reporter::new(
                "calibration-decision",
                serde_json::json!([metric]),
                serde_json::json!({}),
            )?,
            Reporter::new(
                "calibration-decision",
                serde_json::json!([metric]),
                fixed.clone(),
            )?,
        ]);
    }
    anyhow::ensure!(
        reporters
            .iter()
            .all(|[s, f]| s.version.spec.analysis().sequential()
                && !f.version.spec.analysis().sequential()),
        "the default spec is not sequential"
    );
    let results: Vec<DecisionAaRun> = pool.map(runs, "decision A/A", |run| {
        let mut rng = pool.rng(30, run);
        let dist = cycle_time();
        let mut data = [TwoArms::new(), TwoArms::new()];
        let mut flags = [[false; 3]; 2];
        let mut failed = 0;
        for look in 1..=PEEKS {
            add_units(&mut data[0], DECISION_LOOK_UNITS, &mut rng, |_, r| {
                dist.sample(r)
            });
            add_units(&mut data[1], DECISION_LOOK_UNITS, &mut rng, |_, r| {
                bernoulli(r, ESCALATION)
            });
            for (k, key) in keys.iter().enumerate() {
                for (s, reporter) in reporters[k].iter().enumerate() {
                    match decided(&reporter.report(&[(key, &data[k])]), key) {
                        Ok((v, _)) => {
                            let significant = matches!(v, Verdict::Better | Verdict::Worse);
                            flags[k][s] |= significant;
                            if s == 1 && look == PEEKS {
                                flags[k][2] = significant;
                            }
                        }
                        Err(()) => failed += 1,
                    }
                }
            }
        }
        (flags, failed)
    });
    let failed = results.iter().map(|r| r.1).sum();
    let events = |k: usize, s: usize| {
        u64::try_from(results.iter().filter(|r| r.0[k][s]).count()).unwrap_or(u64::MAX)
    };
    let a = alpha;
    let (lo, hi) = acceptance_range(runs, alpha, 0.99);
    let what = ["cycle time (log-normal)", "escalation (binary, 10%)"];
    let ids = [
        [
            "decision_aa_sequential_duration",
            "decision_aa_fixed_peeked_duration",
            "decision_aa_fixed_horizon_duration",
        ],
        [
            "decision_aa_sequential_binary",
            "decision_aa_fixed_peeked_binary",
            "decision_aa_fixed_horizon_binary",
        ],
    ];
    let step = DECISION_LOOK_UNITS;
    let mut figures = Vec::new();
    for k in 0..2 {
        figures.push(rate_figure(
            ids[k][0],
            "decision_aa",
            format!(
                "A/A, default spec (sequential), {PEEKS} looks (every {step} units per arm to {horizon}): primary verdict ever better or worse, {}",
                what[k]
            ),
            events(k, 0),
            runs,
            format!("≤ {:.0}%", a * 100.0),
            move |v, _, _| v <= a,
        ));
        figures.push(rate_figure(
            ids[k][1],
            "decision_aa",
            format!(
                "A/A, fixed-horizon spec (planned {} units) peeked at the same {PEEKS} looks: verdict ever better or worse, {}",
                2 * horizon,
                what[k]
            ),
            events(k, 1),
            runs,
            format!(
                "inflated above {:.0}% (why sequential is the default)",
                a * 100.0
            ),
            move |_, low, _| low > a,
        ));
        let at_horizon = events(k, 2);
        figures.push(rate_figure(
            ids[k][2],
            "decision_aa",
            format!(
                "A/A, fixed-horizon spec read once at its planned {} units: verdict better or worse, {}",
                2 * horizon,
                what[k]
            ),
            at_horizon,
            runs,
            format!(
                "in the central 99% binomial range of {:.0}% for {runs} runs: {:.2}%–{:.2}%",
                a * 100.0,
                count(lo) / count(runs) * 100.0,
                count(hi) / count(runs) * 100.0
            ),
            move |_, _, _| lo <= at_horizon && at_horizon <= hi,
        ));
    }
    Ok((figures, failed))
}

/// The coverage study's family: (key, kind, direction, role, true relative lift).
const FAMILY: [(&str, &str, &str, &str, f64); 3] = [
    ("cycle_time", "duration", "decrease", "primary", -0.15),
    ("cost", "cost", "decrease", "secondary", 0.0),
    ("resolved", "binary", "increase", "secondary", 0.10),
];

/// One unit's value of family metric `k` in `arm`.
fn family_value(
    k: usize,
    arm: usize,
    rng: &mut StdRng,
    cycle: &LogNormal<f64>,
    cost: &LogNormal<f64>,
) -> f64 {
    let lift = if arm == 1 { FAMILY[k].4 } else { 0.0 };
    match k {
        0 => cycle.sample(rng) * (1.0 + lift),
        1 => cost.sample(rng) * (1.0 + lift),
        _ => bernoulli(rng, FAMILY_RATE * (1.0 + lift)),
    }
}

/// Whether each family metric's decision interval covers its true lift in `report` (`Err`
/// when a decision is missing).
fn family_covers(report: &Report) -> Result<[bool; 3], ()> {
    let mut covered = [false; 3];
    for (k, (key, _, _, _, truth)) in FAMILY.iter().enumerate() {
        let (_, d) = decided(report, key)?;
        // A collecting comparison has no interval: it covers nothing.
        covered[k] = d.is_some_and(|d| d.ci_low <= *truth && *truth <= d.ci_high);
    }
    Ok(covered)
}

/// Coverage of the decision intervals of a Holm-corrected family of three metrics with known
/// true lifts: the default spec (sequential) at every one of 20 looks, and a fixed-horizon
/// spec read once at its planned horizon.
fn decision_coverage_study(
    pool: &Pool,
    runs: u64,
    alpha: f64,
) -> anyhow::Result<(Vec<Figure>, u64)> {
    let metrics: Vec<serde_json::Value> = FAMILY
        .iter()
        .map(|(key, kind, direction, role, _)| metric_json(key, kind, direction, role, None))
        .collect();
    let sequential = Reporter::new(
        "calibration-family",
        serde_json::json!(metrics),
        serde_json::json!({}),
    )?;
    let fixed = Reporter::new(
        "calibration-family",
        serde_json::json!(metrics),
        serde_json::json!({"sequential": false, "planned_units": 2 * FIXED_COVERAGE_UNITS}),
    )?;
    anyhow::ensure!(
        sequential.version.spec.analysis().correction() == Correction::Holm
            && sequential.version.spec.analysis().sequential(),
        "the default spec is no longer sequential with Holm's correction"
    );
    let horizon = decision_horizon();
    let results: Vec<([[bool; 4]; 2], u64)> = pool.map(runs, "decision coverage", |run| {
        let mut rng = pool.rng(31, run);
        let (cycle, cost) = (cycle_time(), cost_dist());
        let mut failed = 0;
        // [sequential at every look, fixed at its horizon] × [three metrics, all three].
        let mut covered = [[true; 4]; 2];
        let mut data = [TwoArms::new(), TwoArms::new(), TwoArms::new()];
        for _ in 0..PEEKS {
            for (k, d) in data.iter_mut().enumerate() {
                add_units(d, DECISION_LOOK_UNITS, &mut rng, |arm, r| {
                    family_value(k, arm, r, &cycle, &cost)
                });
            }
            let report = sequential.report(&[
                (FAMILY[0].0, &data[0]),
                (FAMILY[1].0, &data[1]),
                (FAMILY[2].0, &data[2]),
            ]);
            match family_covers(&report) {
                Ok(c) => {
                    for k in 0..3 {
                        covered[0][k] &= c[k];
                    }
                    covered[0][3] &= c.iter().all(|&x| x);
                }
                Err(()) => {
                    failed += 1;
                    covered[0] = [false; 4];
                }
            }
        }
        let mut data = [TwoArms::new(), TwoArms::new(), TwoArms::new()];
        for (k, d) in data.iter_mut().enumerate() {
            add_units(d, FIXED_COVERAGE_UNITS, &mut rng, |arm, r| {
                family_value(k, arm, r, &cycle, &cost)
            });
        }
        let report = fixed.report(&[
            (FAMILY[0].0, &data[0]),
            (FAMILY[1].0, &data[1]),
            (FAMILY[2].0, &data[2]),
        ]);
        match family_covers(&report) {
            Ok(c) => {
                covered[1] = [c[0], c[1], c[2], c.iter().all(|&x| x)];
            }
            Err(()) => {
                failed += 1;
                covered[1] = [false; 4];
            }
        }
        (covered, failed)
    });
    let failed = results.iter().map(|r| r.1).sum();
    let level = 1.0 - alpha;
    let floor = level - 0.015;
    let target = format!("≥ {:.1}% ({:.0}% − 1.5 pp)", floor * 100.0, level * 100.0);
    let truth = |k: usize| {
        let (key, _, _, _, lift) = FAMILY[k];
        let lift = if lift == 0.0 {
            "0".to_string()
        } else {
            signed(lift * 100.0, 0)
        };
        format!("{} (true lift {lift}%)", key.replace('_', " "))
    };
    let ids = [
        [
            "decision_coverage_sequential_cycle_time",
            "decision_coverage_sequential_cost",
            "decision_coverage_sequential_resolved",
            "decision_coverage_sequential_family",
        ],
        [
            "decision_coverage_fixed_cycle_time",
            "decision_coverage_fixed_cost",
            "decision_coverage_fixed_resolved",
            "decision_coverage_fixed_family",
        ],
    ];
    let when = [
        format!("default spec (sequential), at all {PEEKS} looks to {horizon} units per arm"),
        format!("fixed-horizon spec at its planned {FIXED_COVERAGE_UNITS} units per arm"),
    ];
    let mut figures = Vec::new();
    for (s, (ids, when)) in ids.iter().zip(&when).enumerate() {
        for (k, id) in ids.iter().enumerate() {
            let events =
                u64::try_from(results.iter().filter(|r| r.0[s][k]).count()).unwrap_or(u64::MAX);
            let figure = if k < 3 {
                rate_figure(
                    id,
                    "decision_coverage",
                    format!(
                        "Holm-adjusted decision interval covers {}, {when}",
                        truth(k)
                    ),
                    events,
                    runs,
                    target.clone(),
                    move |v, _, _| v >= floor,
                )
            } else {
                // Holm-matched intervals are each at least as wide as the plain one, but they
                // are not simultaneous intervals: all three at once is only bounded below by
                // 1 − 3α. liftlab promises each interval's coverage, so this row is reported.
                reported_rate(
                    id,
                    "decision_coverage",
                    format!("all three Holm-adjusted decision intervals cover at once (family-wise; not promised, since Holm-matched intervals are not simultaneous: their floor is 1 − 3α), {when}"),
                    events,
                    runs,
                )
            };
            figures.push(figure);
        }
    }
    Ok((figures, failed))
}

/// The covariate's spread: the task's estimated minutes are uniform on this range.
const CUPED_ESTIMATE: (f64, f64) = (10.0, 50.0);

/// The sd of the minutes the estimate does not explain.
const CUPED_NOISE_SD: f64 = 8.0;

/// The true relative lift of the CUPED coverage study (minutes fall by 5%).
const CUPED_LIFT: f64 = -0.05;

/// CUPED on a covariate sent at assignment: the variance the adjustment removes against the
/// simulator's truth ρ² = Var(estimate)/(Var(estimate) + Var(noise)) of an A/A test, the A/A
/// false-positive rate of the adjusted decision over 20 looks, and the coverage of its interval
/// for a true −5% lift at every look.
fn cuped_study(pool: &Pool, runs: u64, alpha: f64) -> anyhow::Result<(Vec<Figure>, u64)> {
    let reporter = Reporter::new(
        "calibration-cuped",
        serde_json::json!([{
            "key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary",
            "covariate": {"attribute": "estimated_minutes"}
        }]),
        serde_json::json!({}),
    )?;
    let (lo, hi) = CUPED_ESTIMATE;
    let var_estimate = (hi - lo).powi(2) / 12.0;
    let truth = var_estimate / (var_estimate + CUPED_NOISE_SD.powi(2));
    let noise = rand_distr::Normal::new(0.0, CUPED_NOISE_SD)
        .map_err(|e| anyhow::anyhow!("the CUPED noise: {e}"))?;
    let horizon = decision_horizon();
    // Per run: the A/A variance reduction at the horizon, ever significant in the A/A, the
    // effect's interval covering the truth at every look, and failed computations.
    let results: Vec<(Option<f64>, bool, bool, u64)> = pool.map(runs, "CUPED", |run| {
        let mut rng = pool.rng(33, run);
        // [scenario][arm] → the Overall (x), Paired (estimate) and PairSum (x + estimate) moments.
        let mut data = [[[Moments::new(); 3]; 2]; 2];
        let mut reduction = None;
        let (mut ever_significant, mut always_covered, mut failed) = (false, true, 0);
        for look in 1..=PEEKS {
            for (scenario, lift) in [0.0, CUPED_LIFT].into_iter().enumerate() {
                for (arm, parts) in data[scenario].iter_mut().enumerate() {
                    for _ in 0..DECISION_LOOK_UNITS {
                        let estimate = rng.random_range(lo..hi);
                        let factor = if arm == 1 { 1.0 + lift } else { 1.0 };
                        let minutes = (estimate * factor + noise.sample(&mut rng)).max(0.0);
                        parts[0].push(minutes);
                        parts[1].push(estimate);
                        parts[2].push(minutes + estimate);
                    }
                }
                let scopes = [AggScope::Overall, AggScope::Paired, AggScope::PairSum];
                let mut aggregates = Vec::with_capacity(6);
                for (arm, parts) in data[scenario].iter().enumerate() {
                    for (scope, moments) in scopes.iter().zip(parts) {
                        aggregates.push((
                            AggKey {
                                epoch: 0,
                                arm: DECISION_ARMS[arm].to_string(),
                                metric: "minutes".to_string(),
                                scope: scope.clone(),
                            },
                            MetricAggregate {
                                moments: *moments,
                                ..MetricAggregate::default()
                            },
                        ));
                    }
                }
                let units = data[scenario][0][0].n();
                let report = reporter.build(&aggregates, [units, units]);
                let Ok((verdict, decision)) = decided(&report, "minutes") else {
                    failed += 1;
                    continue;
                };
                let cuped = report.metrics[0].comparisons[0].cuped;
                if scenario == 0 {
                    ever_significant |= matches!(verdict, Verdict::Better | Verdict::Worse);
                    if look == PEEKS {
                        reduction = cuped.map(|c| c.variance_reduction);
                    }
                } else if let Some(d) = decision {
                    always_covered &= d.ci_low <= CUPED_LIFT && CUPED_LIFT <= d.ci_high;
                }
            }
        }
        (reduction, ever_significant, always_covered, failed)
    });
    let failed = results.iter().map(|r| r.3).sum();
    let reductions: Vec<f64> = results.iter().filter_map(|r| r.0).collect();
    let count_of = |ever: bool| {
        let hits = results
            .iter()
            .filter(|r| if ever { r.1 } else { r.2 })
            .count();
        u64::try_from(hits).unwrap_or(u64::MAX)
    };
    let a = alpha;
    let floor = 0.95 - 0.015;
    let (mean, _, _) = mean_ci(&reductions);
    let close = (mean - truth).abs() <= 0.02;
    let looks = format!("{PEEKS} looks (every {DECISION_LOOK_UNITS} units per arm to {horizon})");
    Ok((
        vec![
            mean_figure(
                "cuped_variance_reduction",
                "cuped",
                format!(
                    "variance of the relative lift removed by CUPED on the estimate sent at assignment, A/A at {horizon} units per arm (simulator's truth ρ² = {:.1}%)",
                    truth * 100.0
                ),
                &reductions,
                format!("within 2 pp of ρ² = {:.1}%", truth * 100.0),
                Some(close),
                true,
            ),
            rate_figure(
                "cuped_aa",
                "cuped",
                format!("A/A with the covariate, default spec (sequential), {looks}: verdict ever better or worse"),
                count_of(true),
                runs,
                format!("≤ {:.0}%", a * 100.0),
                move |v, _, _| v <= a,
            ),
            rate_figure(
                "cuped_coverage",
                "cuped",
                format!(
                    "CUPED-adjusted decision interval covers the true {:.0}% lift at every one of the {looks}",
                    CUPED_LIFT * 100.0
                ),
                count_of(false),
                runs,
                "≥ 93.5% (95% − 1.5 pp)".to_string(),
                move |v, _, _| v >= floor,
            ),
        ],
        failed,
    ))
}

/// The guardrail harm test: false alarms under A/A over 20 looks, power at a stated harm, and
/// false alarms when the true harm equals the tolerated `max_harm`.
fn decision_harm_study(pool: &Pool, runs: u64, alpha: f64) -> anyhow::Result<(Vec<Figure>, u64)> {
    let primary = metric_json("cycle_time", "duration", "decrease", "primary", None);
    let reporter = |max_harm: Option<f64>| {
        Reporter::new(
            "calibration-guardrail",
            serde_json::json!([
                primary,
                metric_json("escalated", "binary", "decrease", "guardrail", max_harm)
            ]),
            serde_json::json!({}),
        )
    };
    let strict = reporter(None)?;
    let tolerant = reporter(Some(MAX_HARM))?;
    let tolerated_rate = ESCALATION * (1.0 + MAX_HARM);
    // (reporter, the treatment's escalation rate): A/A, a harm of HARM_LIFT, exactly max_harm.
    let scenarios = [
        (&strict, ESCALATION),
        (&strict, ESCALATION * (1.0 + HARM_LIFT)),
        (&tolerant, tolerated_rate),
    ];
    let horizon = decision_horizon();
    let results: Vec<([bool; 4], u64)> = pool.map(runs, "harm test", |run| {
        let mut rng = pool.rng(32, run);
        let dist = cycle_time();
        let mut primary_data = TwoArms::new();
        let mut guardrail = [TwoArms::new(), TwoArms::new(), TwoArms::new()];
        // Ever flagged in each scenario, and the harm scenario flagged at the last look.
        let mut flagged = [false; 4];
        let mut failed = 0;
        for look in 1..=PEEKS {
            add_units(&mut primary_data, DECISION_LOOK_UNITS, &mut rng, |_, r| {
                dist.sample(r)
            });
            for (s, (reporter, rate)) in scenarios.iter().enumerate() {
                add_units(
                    &mut guardrail[s],
                    DECISION_LOOK_UNITS,
                    &mut rng,
                    |arm, r| bernoulli(r, if arm == 1 { *rate } else { ESCALATION }),
                );
                let report =
                    reporter.report(&[("cycle_time", &primary_data), ("escalated", &guardrail[s])]);
                let Some(g) = report.guardrails.first() else {
                    failed += 1;
                    continue;
                };
                if g.verdict != Verdict::Collecting && g.decision.is_none() {
                    failed += 1;
                }
                let worse = g.verdict == Verdict::Worse;
                flagged[s] |= worse;
                if s == 1 && look == PEEKS {
                    flagged[3] = worse;
                }
            }
        }
        (flagged, failed)
    });
    let failed = results.iter().map(|r| r.1).sum();
    let events =
        |i: usize| u64::try_from(results.iter().filter(|r| r.0[i]).count()).unwrap_or(u64::MAX);
    let a = alpha;
    let step = DECISION_LOOK_UNITS;
    let looks = format!("{PEEKS} looks (every {step} units per arm to {horizon})");
    let pct = |x: f64| format!("{:.1}%", x * 100.0).replace(".0%", "%");
    let figures = vec![
        rate_figure(
            "decision_harm_aa",
            "decision_harm",
            format!("A/A, guardrail escalation {} in both arms, max_harm 0, {looks}: ever flagged worse (harm)", pct(ESCALATION)),
            events(0),
            runs,
            format!("≤ {:.0}%", a * 100.0),
            move |v, _, _| v <= a,
        ),
        reported_rate(
            "decision_harm_power",
            "decision_harm",
            format!(
                "power: escalation {} → {} (+{:.0}% relative), max_harm 0: flagged worse at any of the {looks}",
                pct(ESCALATION),
                pct(ESCALATION * (1.0 + HARM_LIFT)),
                HARM_LIFT * 100.0
            ),
            events(1),
            runs,
        ),
        reported_rate(
            "decision_harm_power_final",
            "decision_harm",
            format!(
                "power: the same harm, flagged worse at the look at {horizon} units per arm"
            ),
            events(3),
            runs,
        ),
        rate_figure(
            "decision_harm_tolerance",
            "decision_harm",
            format!(
                "max_harm {MAX_HARM}, true harm exactly +{:.0}% (escalation {} → {}), {looks}: ever flagged worse",
                MAX_HARM * 100.0,
                pct(ESCALATION),
                pct(tolerated_rate)
            ),
            events(2),
            runs,
            format!("≤ {:.0}%", a * 100.0),
            move |v, _, _| v <= a,
        ),
    ];
    Ok((figures, failed))
}

/// A 3-arm Thompson spec over a binary reward, with liftlab's default floor, warm-up and update interval.
fn bandit_spec(discount: f64) -> anyhow::Result<ExperimentSpec> {
    ExperimentSpec::parse(&serde_json::json!({
        "key": "calibration-bandit",
        "arms": [
            {"key": "model-a", "role": "baseline"},
            {"key": "model-b", "role": "treatment"},
            {"key": "model-c", "role": "treatment"}
        ],
        "allocation": {"policy": "thompson", "reward": "resolved", "discount": discount},
        "metrics": [{"key": "resolved", "kind": "binary", "direction": "increase", "role": "primary"}]
    }))
    .map_err(|e| anyhow::anyhow!("the calibration bandit spec is invalid: {e}"))
}

/// One bandit run through liftlab-domain: units hashed into the current period's weights by
/// `decide`, rewards fed to `BanditState`, a new period opened whenever one is due. Returns the
/// dynamic pseudo-regret Σ (best rate − served arm's rate) at the time of each task.
fn bandit_run(
    spec: &ExperimentSpec,
    rates: impl Fn(usize) -> [f64; 3],
    rng: &mut StdRng,
    tag: &str,
) -> anyhow::Result<f64> {
    let mut state = BanditState::new(spec).context("the calibration spec is not a bandit")?;
    let mut period = initial_period(spec, 0);
    let mut regret = 0.0;
    for task in 0..BANDIT_TASKS {
        let now = i64::try_from(task).unwrap_or(i64::MAX);
        let (assignment, arm) = serve(spec, &period, &format!("{tag}-{task}"), now)?;
        let p = rates(task);
        let best = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        regret += best - p[arm];
        let reward = f64::from(u8::from(rng.random::<f64>() < p[arm]));
        state.observe(&assignment.arm, reward)?;
        if state.due(spec) {
            period = state.recompute(spec, period.period + 1, now);
        }
    }
    Ok(regret)
}

fn bandit_study(pool: &Pool, runs: u64) -> anyhow::Result<(Vec<Figure>, u64)> {
    let plain = bandit_spec(1.0)?;
    let discounted = bandit_spec(DISCOUNT)?;
    let uniform_regret = |p: &[f64; 3]| {
        let best = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean = p.iter().sum::<f64>() / 3.0;
        count(BANDIT_TASKS as u64) * (best - mean)
    };
    let stationary = |p: [f64; 3]| move |_: usize| p;
    let changing = |task: usize| {
        if task < CHANGE_AT {
            BANDIT_RATES
        } else {
            BANDIT_RATES_AFTER
        }
    };
    let results: Vec<anyhow::Result<[f64; 5]>> = pool.map(runs, "bandits", |run| {
        let tag = format!("s{}-r{run}", pool.seed);
        // The same seed for both samplers of a problem: common random numbers pair the comparison.
        let one = |spec: &ExperimentSpec, rates: &dyn Fn(usize) -> [f64; 3], study: u64| {
            bandit_run(spec, rates, &mut pool.rng(study, run), &tag)
        };
        Ok([
            one(&plain, &stationary(BANDIT_RATES), 10)?,
            one(&plain, &stationary(BANDIT_RATES_HARD), 11)?,
            one(&discounted, &stationary(BANDIT_RATES), 10)?,
            one(&plain, &changing, 12)?,
            one(&discounted, &changing, 12)?,
        ])
    });
    let results: Vec<[f64; 5]> = results.into_iter().collect::<anyhow::Result<_>>()?;
    let column = |i: usize| results.iter().map(|r| r[i]).collect::<Vec<f64>>();
    let uniform = uniform_regret(&BANDIT_RATES);
    let uniform_hard = uniform_regret(&BANDIT_RATES_HARD);
    let ratio = |xs: Vec<f64>, u: f64| xs.into_iter().map(|x| x / u).collect::<Vec<f64>>();
    let rates = |p: [f64; 3]| p.map(|x| format!("{:.0}%", x * 100.0)).join("/");
    let stationary_ratio = mean_ci(&ratio(column(0), uniform));
    let mut figures = vec![
        mean_figure(
            "thompson_regret_ratio",
            "thompson",
            format!(
                "Thompson regret ÷ uniform regret ({uniform:.0}), stationary {} over {BANDIT_TASKS} tasks",
                rates(BANDIT_RATES)
            ),
            &ratio(column(0), uniform),
            "≤ 30%".to_string(),
            Some(stationary_ratio.0 <= 0.30),
            true,
        ),
        mean_figure(
            "thompson_regret_ratio_hard",
            "thompson",
            format!("Thompson regret ÷ uniform regret ({uniform_hard:.0}), harder problem {}", rates(BANDIT_RATES_HARD)),
            &ratio(column(1), uniform_hard),
            "reported".to_string(),
            None,
            true,
        ),
        mean_figure(
            "thompson_discounted_stationary_ratio",
            "thompson",
            format!("discounted (γ = {DISCOUNT}) Thompson regret ÷ uniform, stationary {}", rates(BANDIT_RATES)),
            &ratio(column(2), uniform),
            "reported (the price of forgetting)".to_string(),
            None,
            true,
        ),
    ];
    let undiscounted = column(3);
    let discounted_regret = column(4);
    let difference: Vec<f64> = discounted_regret
        .iter()
        .zip(&undiscounted)
        .map(|(d, u)| d - u)
        .collect();
    let (_, _, diff_high) = mean_ci(&difference);
    figures.push(mean_figure(
        "change_regret_undiscounted",
        "thompson",
        format!(
            "dynamic regret, undiscounted Thompson: {} → {} at task {CHANGE_AT}",
            rates(BANDIT_RATES),
            rates(BANDIT_RATES_AFTER)
        ),
        &undiscounted,
        "reported".to_string(),
        None,
        false,
    ));
    figures.push(mean_figure(
        "change_regret_discounted",
        "thompson",
        format!("dynamic regret, discounted Thompson (γ = {DISCOUNT}), same change"),
        &discounted_regret,
        "reported".to_string(),
        None,
        false,
    ));
    figures.push(mean_figure(
        "change_regret_difference",
        "thompson",
        "discounted − undiscounted dynamic regret (paired by seed)".to_string(),
        &difference,
        "< 0, with the whole 95% interval below 0".to_string(),
        Some(diff_high < 0.0),
        false,
    ));
    Ok((figures, 0))
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

/// A stream of one metric of one arm through liftlab-domain's `DriftMonitor`, one outcome per
/// event with the event's index as its timestamp.
struct DriftFeed {
    spec: ExperimentSpec,
    monitor: DriftMonitor,
    outcome: Outcome,
    index: i64,
}

impl DriftFeed {
    fn new(spec: &ExperimentSpec) -> Self {
        Self {
            spec: spec.clone(),
            monitor: DriftMonitor::new(),
            outcome: Outcome {
                event_id: String::new(),
                experiment: spec.key().to_string(),
                task_id: String::new(),
                unit_id: String::new(),
                arm: spec.baseline().key().to_string(),
                epoch: 0,
                ts: 0,
                metrics: BTreeMap::new(),
                handled_by: None,
                model_version: None,
                attributes: BTreeMap::new(),
            },
            index: 0,
        }
    }

    /// Feeds one value; returns the detectors that fired on it.
    fn push(&mut self, x: f64) -> Vec<Detector> {
        self.outcome.ts = self.index;
        self.index += 1;
        self.outcome.metrics.insert("cycle_time".to_string(), x);
        self.monitor
            .observe(&self.spec, &self.outcome)
            .into_iter()
            .map(|d| d.detector)
            .collect()
    }
}

/// One drift run: false alarms by detector over the stationary events, and the delay (events
/// after the shift) with the detector that caught it first, when one did.
type DriftRun = ([u64; 3], Option<(u64, Detector)>);

fn drift_study(pool: &Pool, runs: u64) -> anyhow::Result<(Vec<Figure>, u64)> {
    let spec = ExperimentSpec::parse(&serde_json::json!({
        "key": "calibration-drift",
        "arms": [{"key": "a", "role": "baseline"}, {"key": "b", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"a": 0.5, "b": 0.5}},
        "metrics": [{"key": "cycle_time", "kind": "duration", "direction": "decrease", "role": "primary"}],
        "drift": {"metrics": ["cycle_time"]}
    }))
    .map_err(|e| anyhow::anyhow!("the calibration drift spec is invalid: {e}"))?;
    let settings = spec
        .drift()
        .context("the drift spec has no drift settings")?
        .clone();
    let reference_n = usize::try_from(settings.reference_window()).unwrap_or(500);
    let detectors = [Detector::PageHinkley, Detector::Cusum, Detector::Window];
    let results: Vec<DriftRun> = pool.map(runs, "drift", |run| {
        let mut rng = pool.rng(20, run);
        let dist = cycle_time();
        let mut feed = DriftFeed::new(&spec);
        let mut alarms = [0_u64; 3];
        for event in 0..reference_n + DRIFT_EVENTS {
            for d in feed.push(dist.sample(&mut rng)) {
                if event >= reference_n {
                    if let Some(i) = detectors.iter().position(|x| *x == d) {
                        alarms[i] += 1;
                    }
                }
            }
        }
        let mut feed = DriftFeed::new(&spec);
        (0..reference_n).for_each(|_| {
            feed.push(dist.sample(&mut rng));
        });
        let mut caught = None;
        for event in 1..=DRIFT_EVENTS {
            if let Some(&d) = feed
                .push(dist.sample(&mut rng) * (1.0 + DRIFT_SHIFT))
                .first()
            {
                caught = Some((u64::try_from(event).unwrap_or(u64::MAX), d));
                break;
            }
        }
        (alarms, caught)
    });
    let ph = settings.page_hinkley();
    let cs = settings.cusum();
    let names = [
        format!(
            "Page–Hinkley (δ = {} sd, λ = {} sd)",
            ph.delta(),
            ph.lambda()
        ),
        format!("CUSUM (k = {} sd, h = {} sd)", cs.slack(), cs.threshold()),
        format!(
            "windowed Welch test ({} events, alpha {}, two windows in a row)",
            settings.recent_window(),
            settings.window_alpha()
        ),
    ];
    let ids = [
        "drift_false_alarms_page_hinkley",
        "drift_false_alarms_cusum",
        "drift_false_alarms_window",
    ];
    // Alarms are counted over all runs' stationary events together; the interval is the exact
    // Poisson interval of that count, scaled to 10,000 events.
    let per_10k = 10_000.0 / (count(DRIFT_EVENTS as u64) * count(runs));
    let alarm_figure = |id: &'static str, label: String, alarms: u64| {
        let (low, high) = poisson_interval(alarms, 0.95);
        Figure {
            id,
            study: "drift",
            label,
            value: count(alarms) * per_10k,
            low: low * per_10k,
            high: high * per_10k,
            target: "reported".to_string(),
            met: None,
            runs,
            percent: false,
        }
    };
    let total = |i: Option<usize>| -> u64 {
        results
            .iter()
            .map(|(a, _)| i.map_or_else(|| a.iter().sum(), |i| a[i]))
            .sum()
    };
    let mut figures = vec![alarm_figure(
        "drift_false_alarms",
        format!("false alarms per 10,000 stationary events, whole monitor (reference {reference_n} events)"),
        total(None),
    )];
    for i in 0..3 {
        figures.push(alarm_figure(
            ids[i],
            format!("false alarms per 10,000 stationary events, {}", names[i]),
            total(Some(i)),
        ));
    }
    // A run that never detects counts as the cap, which can only raise the median.
    let delays: Vec<f64> = results
        .iter()
        .map(|(_, c)| count(c.map_or(DRIFT_EVENTS as u64, |(d, _)| d)))
        .collect();
    let missed = results.iter().filter(|(_, c)| c.is_none()).count();
    let first: Vec<String> = detectors
        .iter()
        .map(|d| {
            let n = results
                .iter()
                .filter(|(_, c)| c.is_some_and(|(_, x)| x == *d))
                .count();
            format!("{} {n}", d.as_str())
        })
        .collect();
    let (median, low, high) = median_ci(delays);
    figures.push(Figure {
        id: "drift_delay",
        study: "drift",
        label: format!(
            "median events to detect a +{:.0}% shift of the mean (first to fire: {}; undetected after {DRIFT_EVENTS}: {missed})",
            DRIFT_SHIFT * 100.0,
            first.join(", ")
        ),
        value: median,
        low,
        high,
        target: "reported".to_string(),
        met: None,
        runs,
        percent: false,
    });
    Ok((figures, 0))
}

/// One effect-drift run: outcomes per arm after the change until the first effect alarm (if
/// within the horizon) for the changed advantage, and whether the shared level shift raised
/// an effect alarm at any point of its run.
type EffectRun = (Option<u64>, bool);

/// Feeds one outcome per arm (baseline first) to the monitor; returns whether an effect
/// detection was added.
fn feed_pair(
    spec: &ExperimentSpec,
    monitor: &mut DriftMonitor,
    outcome: &mut Outcome,
    x: [f64; 2],
) -> bool {
    let before = monitor.effect_detections().len();
    for (arm, value) in DECISION_ARMS.iter().zip(x) {
        outcome.ts += 1;
        outcome.arm = (*arm).to_string();
        outcome.metrics.insert("cycle_time".to_string(), value);
        monitor.observe(spec, outcome);
    }
    monitor.effect_detections().len() > before
}

fn effect_drift_study(pool: &Pool, runs: u64) -> anyhow::Result<(Vec<Figure>, u64)> {
    let spec = ExperimentSpec::parse(&serde_json::json!({
        "key": "calibration-effect-drift",
        "arms": [{"key": DECISION_ARMS[0], "role": "baseline"}, {"key": DECISION_ARMS[1], "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {DECISION_ARMS[0]: 0.5, DECISION_ARMS[1]: 0.5}},
        "metrics": [{"key": "cycle_time", "kind": "duration", "direction": "decrease", "role": "primary"}],
        "drift": {"metrics": ["cycle_time"]}
    }))
    .map_err(|e| anyhow::anyhow!("the calibration effect-drift spec is invalid: {e}"))?;
    let after_lift = EFFECT_LIFT * (1.0 - EFFECT_CHANGE);
    let results: Vec<EffectRun> = pool.map(runs, "effect drift", |run| {
        let mut rng = pool.rng(21, run);
        let dist = cycle_time();
        let new_outcome = || Outcome {
            event_id: String::new(),
            experiment: spec.key().to_string(),
            task_id: String::new(),
            unit_id: String::new(),
            arm: String::new(),
            epoch: 0,
            ts: 0,
            metrics: BTreeMap::new(),
            handled_by: None,
            model_version: None,
            attributes: BTreeMap::new(),
        };
        // The advantage changes: the treatment's cycle times go from 0.70 to 0.79 of the
        // baseline's level.
        let mut monitor = DriftMonitor::new();
        let mut outcome = new_outcome();
        let mut caught = None;
        for i in 0..EFFECT_BEFORE + EFFECT_HORIZON {
            let lift = if i < EFFECT_BEFORE {
                EFFECT_LIFT
            } else {
                after_lift
            };
            let x = [dist.sample(&mut rng), dist.sample(&mut rng) * (1.0 + lift)];
            if feed_pair(&spec, &mut monitor, &mut outcome, x) && i >= EFFECT_BEFORE {
                caught = Some(i - EFFECT_BEFORE + 1);
                break;
            }
        }
        // Both arms' levels × 1.3, the advantage unchanged: any effect alarm is false.
        let mut monitor = DriftMonitor::new();
        let mut outcome = new_outcome();
        let mut false_alarm = false;
        for i in 0..EFFECT_BEFORE + EFFECT_LEVEL_HORIZON {
            let level = if i < EFFECT_BEFORE {
                1.0
            } else {
                EFFECT_LEVEL_SHIFT
            };
            let x = [
                dist.sample(&mut rng) * level,
                dist.sample(&mut rng) * level * (1.0 + EFFECT_LIFT),
            ];
            if feed_pair(&spec, &mut monitor, &mut outcome, x) {
                false_alarm = true;
                break;
            }
        }
        (caught, false_alarm)
    });
    let settings = format!(
        "windows of {} outcomes per arm, a {}-window reference that windows join while both sums stay below {}, CUSUM slack {} and threshold {}",
        effect::EFFECT_WINDOW,
        effect::EFFECT_REFERENCE_WINDOWS,
        effect::EFFECT_JOIN,
        effect::EFFECT_SLACK,
        effect::EFFECT_THRESHOLD
    );
    let detected = results.iter().filter(|(c, _)| c.is_some()).count();
    let alarms = results.iter().filter(|(_, a)| *a).count();
    let delays: Vec<f64> = results
        .iter()
        .map(|(c, _)| count(c.unwrap_or(EFFECT_HORIZON)))
        .collect();
    let (median, low, high) = median_ci(delays);
    let figures = vec![
        rate_figure(
            "effect_drift_detected",
            "effect_drift",
            format!(
                "a {:.0}% change in the treatment's advantage (lift {:+.0}% → {:+.0}%) detected within {EFFECT_HORIZON} outcomes per arm ({settings})",
                EFFECT_CHANGE * 100.0,
                EFFECT_LIFT * 100.0,
                after_lift * 100.0
            ),
            u64::try_from(detected).unwrap_or(u64::MAX),
            runs,
            "≥ 95%".to_string(),
            |v, _, _| v >= 0.95,
        ),
        Figure {
            id: "effect_drift_delay",
            study: "effect_drift",
            label: format!(
                "median outcomes per arm to detect that change (undetected runs count as {EFFECT_HORIZON})"
            ),
            value: median,
            low,
            high,
            target: "reported".to_string(),
            met: None,
            runs,
            percent: false,
        },
        rate_figure(
            "effect_drift_level_alarms",
            "effect_drift",
            format!(
                "runs with any effect alarm when both arms' levels shift by {:+.0}% (advantage unchanged; {} outcomes per arm, the shift after {EFFECT_BEFORE})",
                (EFFECT_LEVEL_SHIFT - 1.0) * 100.0,
                EFFECT_BEFORE + EFFECT_LEVEL_HORIZON
            ),
            u64::try_from(alarms).unwrap_or(u64::MAX),
            runs,
            "≤ 5%".to_string(),
            |v, _, _| v <= 0.05,
        ),
    ];
    Ok((figures, 0))
}

/// A number with its sign, the minus as a typographic minus (U+2212).
fn signed(x: f64, decimals: usize) -> String {
    format!("{x:+.decimals$}").replace('-', "\u{2212}")
}

fn fmt_value(f: &Figure, x: f64) -> String {
    let text = if f.percent {
        format!("{:.2}%", x * 100.0)
    } else if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    };
    text.replace('-', "\u{2212}")
}

/// The Markdown report.
pub fn markdown(c: &Calibration, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# liftlab calibration report\n");
    let _ = writeln!(
        s,
        "Measured, not asserted from theory: every figure below comes from seeded Monte Carlo runs of liftlab's own code \
(liftlab-stats' tests, intervals, confidence sequences and power calculator; liftlab-domain's hashing, \
`decide`, `BanditState`, `DriftMonitor` and the results report's `report::build`). Each figure has its 95% interval (Clopper–Pearson for rates, Student t for means, \
Garwood (Poisson) for alarm counts, binomial order statistics for medians) and the target it is held to.\n"
    );
    let _ = writeln!(
        s,
        "Reproduce with `scripts/calibrate.sh`, which runs:\n\n```\n{command}\n```\n"
    );
    let _ = writeln!(
        s,
        "Runs: {} per frequentist study, {} seeds per bandit study, {} drift runs; master seed {}. Computations that failed \
(counted as not significant or not covered): {}.\n",
        c.runs, c.bandit_runs, c.drift_runs, c.seed, c.failed_computations
    );
    let met = c.figures.iter().filter(|f| f.met == Some(true)).count();
    let held = c.figures.iter().filter(|f| f.met.is_some()).count();
    let _ = writeln!(s, "**{met} of {held} targets met.**\n");
    let studies = [
        ("aa", "## A/A false-positive rate", "Two arms from the same truth; about 1,000 units per run hashed 50/50 with liftlab's GrowthBook-compatible hash (a fresh hash seed per run), Welch's two-sided test at alpha 0.05. The target is the range a correct 5% test lands in with 99% probability."),
        ("coverage", "## Coverage of the true lift", "A 15% cycle-time reduction (treatment median × 0.85, log-normal σ = 0.8) and an escalation rate moving from 10% to 12%, about 1,000 hashed units per run; does the 95% interval contain the truth?"),
        ("peeking", "## Peeking", "A/A on cycle time; 2,000 units looked at 20 times. \"Any p < alpha\" over the looks is the false-positive rate of someone who stops at the first significant look. Sequential p-values are the Waudby-Smith confidence sequence of liftlab-stats with the spec's default τ."),
        ("power", "## Power at the spec's minimum detectable effect", "The default analysis settings of a spec (alpha, power, mde, read from liftlab-domain). The sample size per arm comes from liftlab-stats' power calculator; then that many units per arm are simulated with the true effect equal to the mde, and Welch's test decides. The promise is the calculator's achieved power at the rounded-up sample size."),
        ("", "## The decision (what the verdict reads)", "Every comparison's `decision` is what the verdict, the headline sentence, the key-results table, the forest plot, the CSV and the CLI read (DESIGN.md, \"The decision\"). These figures come from the report itself: at each look the simulated units are folded into per-arm aggregates and liftlab-domain's `report::build` assembles the whole report of a running two-arm experiment, from which the verdict and the decision interval are read. Looks come every 100 units per arm, up to 2,000 per arm. A comparison below the minimum evidence (30 units per arm; 5 successes and 5 failures for a binary metric) is `collecting`: it counts as neither significant nor covering."),
        ("decision_aa", "### A/A under 20 looks", "Two arms from the same truth, one primary metric per spec. The default spec is sequential (always-valid confidence sequences on the relative lift, τ = 5000). The fixed-horizon spec says `\"sequential\": false` with `planned_units` 4,000; it is read at every look, as someone watching the page would, and once at its horizon, as intended."),
        ("decision_coverage", "### Coverage of the adjusted intervals", "One family of three metrics with known true relative lifts: the primary cycle time (log-normal σ = 0.8, −15%), a secondary cost per case (log-normal σ = 1.0, no change) and a secondary resolution rate (30% → 33%, +10%), corrected with Holm's method (the default). Each decision interval is at the level that matches its adjusted p-value (α·p/p_adjusted), so never narrower than the unadjusted one. The default (sequential) spec is held to its always-valid promise: an interval counts as covering only if it covers at every one of the 20 looks. The fixed-horizon spec (`planned_units` 2,000) is read once, at its horizon. Family-wise: all three intervals cover at once."),
        ("decision_harm", "### Guardrail harm test", "A primary cycle-time metric (A/A) beside a guardrail escalation rate (10% in the baseline; direction decrease). The guardrail's decision is a one-sided always-valid harm test at alpha for a relative rise beyond `max_harm`, not corrected for the other metrics; its verdict \"worse\" is what the page warns about and what `auto_pause_on_harm` acts on. Runs are flagged when the verdict is worse at any of the 20 looks, except the last power row, which reads the final look only."),
        ("cuped", "### CUPED on a covariate sent at assignment", "A primary duration metric with `covariate: {\"attribute\": \"estimated_minutes\"}`: each unit's estimate is uniform on 10–50 minutes and its minutes are the estimate (times 0.95 in the treatment of the effect scenario) plus normal noise with sd 8, so the simulator's truth for the share of variance the estimate explains is ρ² = Var(estimate)/(Var(estimate) + 64). The report reads the paired aggregates (x, the estimate, and x + estimate) the store keeps and decides on the CUPED-adjusted lift with one pooled θ."),
        ("thompson", "## Thompson sampling", "liftlab-domain's machinery end to end: units hashed by `decide` into the current allocation period, rewards fed to `BanditState`, a new period opened when `due` (default floor 0.01, warm-up 100 rewards per arm, update every 50). Regret is the pseudo-regret Σ(best rate − served arm's rate); uniform allocation's is exact. Rewards arrive immediately; batching every 50 rewards is the only delay. The change study pairs the two samplers on the same seeds."),
        ("adaptive", "## Adaptive allocation: decisions stratified by allocation period", "Experiments whose weights change (every Thompson experiment; a fixed policy ramped by a spec update) decide on the lift stratified by allocation period: each period's arms compared within the period, the periods weighted by their share of units, periods merged until each compared arm has 25 units (liftlab-stats' `stratified`, read by `report::build`). Each run sends 3,000 units through liftlab-domain's `decide` (and `BanditState`, default warm-up 100 and update every 50, for the bandits) with a binary outcome per unit, and reads the report at the end of the run. Bandit A/A: every arm at 10%; the always-valid decision is held to at most alpha (it spends less than alpha at a single look, so the binomial range of exactly alpha would be the wrong target). Trend: the rate of both arms rises linearly from 10% to 20% over the run and the treatment adds 2 points, so the estimand \"every unit on T against every unit on B, averaged over the run\" is +2 points over the baseline's run average; the stratified estimate's plain 95% interval is held to 95% ± 1.5 pp, the decision's always-valid interval to at least that, and the naive pooled interval (the report's `relative` diagnostic) is shown failing. Ratio metric: the same ramp with a ratio metric, cost per minute (minutes uniform on 5–20 per unit in every arm and period, cost = rate × minutes × a uniform factor on 0.5–1.5, the baseline's rate rising from 1 to 2 over the run and the treatment's 10% lower), decided on the combined ratio estimator stratified by period (`stratified_ratio_lift`); the true lift is −10% exactly. Thompson regret is unchanged by construction: the estimator reads the aggregates and never feeds the allocation (the Thompson rows above come from the same `BanditState`)."),
        ("drift", "## Drift detection", "liftlab-domain's `DriftMonitor` with a spec's default drift settings (Page–Hinkley, CUSUM and the windowed test, in units of the reference window's sd), fed log-normal cycle times of one arm. False alarms: the 10,000 stationary events after the 500-event reference (after an alarm the monitor learns a new reference, as in production). Delay: events until the first detection after the mean shifts up by 30%."),
        ("effect_drift", "## Drift on the effect", "liftlab-domain's `DriftMonitor` watching the treatment's effect: the relative lift of the treatment's cycle time over the baseline's, per window of outcomes, against a reference learned from the first windows, by a two-sided CUSUM on the standardized change (the fixed settings in the rows). Both arms draw log-normal cycle times (σ = 0.8), one outcome per arm in turn; the treatment's are 0.70 of the baseline's. Detection: after 3,000 outcomes per arm the treatment's factor becomes 0.79 (its advantage shrinks by 30%). Workload drift: after 3,000 outcomes per arm both arms' cycle times are multiplied by 1.3, which leaves the relative lift unchanged; any effect alarm in the run counts. Level detections (the study above) are workload drift and never re-baseline; effect detections are what `auto_rebaseline` acts on."),
    ];
    for (study, title, how) in studies {
        if study.is_empty() {
            // A section heading over the studies that follow it.
            if c.figures.iter().any(|f| f.study.starts_with("decision")) {
                let _ = writeln!(s, "{title}\n\n{how}\n");
            }
            continue;
        }
        let rows: Vec<&Figure> = c.figures.iter().filter(|f| f.study == study).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(s, "{title}\n\n{how}\n");
        let _ = writeln!(s, "| Figure | Measured | 95% interval | Target | Met |");
        let _ = writeln!(s, "|---|---:|---|---|:-:|");
        for f in rows {
            let met = match f.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} – {} | {} | {} |",
                f.label,
                fmt_value(f, f.value),
                fmt_value(f, f.low),
                fmt_value(f, f.high),
                f.target,
                met
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "## Reading these figures\n\n\
- The targets are the design's bars; rows marked \"reported\" have none and are there for tuning.\n\
- Every figure is one seeded Monte Carlo estimate: another seed moves it within its interval. The A/A and coverage \
targets are judged on the point estimate, so a correct system misses the A/A range in about 1 seed in 100 \
and the coverage band (±1.5 pp is about three standard errors at 2,000 runs) more rarely still.\n\
- The bandit problems are chosen instances (resolution rates of three model versions); the regret ratio depends on \
the gaps between the arms, as the harder problem shows. Rewards are immediate here, while in production outcomes \
arrive late, which adds regret.\n\
- The decision's always-valid intervals and p-values hold over any number of looks, so at 20 looks they are \
conservative: A/A rates well below alpha and coverage well above 95% are the price of being safe to peek.\n\
- Holm-matched decision intervals (level α·p/p_adjusted) are each at least as wide as the unadjusted interval, \
which is what per-interval coverage rests on. They are not simultaneous intervals: whenever the largest p-value \
is also the largest adjusted one, its comparison keeps the unadjusted level, so all m intervals of a family cover \
at once with probability at least 1 − m·alpha (Bonferroni's inequality), not 1 − alpha.\n\
- The drift monitor runs with a spec's default settings on skewed (log-normal) data. A run in which a shift is \
never detected counts as {DRIFT_EVENTS} events in the median.\n\
- The in-process simulator (`liftlab simulate`, api-spec/examples/scenarios/) checks the same properties end to \
end over HTTP, one seeded run at a time."
    );
    s
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
