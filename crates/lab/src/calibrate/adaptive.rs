//! Calibration of the decisions under adaptive allocation: bandit A/A, a bandit and a ramp under a shared time trend, each read from `report::build`.
//!
//! Every run drives liftlab-domain's assignment machinery (`decide` into the current
//! allocation period; for a bandit `BanditState` opens a new period when `due`, for a ramp
//! the weights change once half-way), draws a binary outcome per unit from a known truth,
//! keeps each arm's per-unit moments overall and by period (the `Overall` and `Period`
//! aggregates the store folds) and builds the experiment's report, whose decisions are
//! stratified by allocation period.

use std::collections::BTreeMap;

use anyhow::Context as _;
use liftlab_domain::report::{build as build_report, EpochInfo, PeriodCount, Report, ReportInput};
use liftlab_domain::{
    initial_period, AggKey, AggScope, AllocationPeriod, BanditState, ExperimentSpec,
    ExperimentVersion, MetricAggregate,
};
use liftlab_stats::dist::norm_ppf;
use liftlab_stats::Moments;
use rand::rngs::StdRng;
use rand::Rng;

use super::{acceptance_range, count, rate_figure, serve, started, tally, Figure, Pool, Verdict};

/// Units per run of the adaptive studies.
const UNITS: usize = 3000;
/// The reward rate of every arm in the bandit A/A study.
const AA_RATE: f64 = 0.10;
/// The baseline's rate at the start of the trend studies; it rises linearly by [`TREND_RISE`]
/// over the run, in every arm alike.
const TREND_START: f64 = 0.10;
/// How much the shared trend raises every arm's rate over the run.
const TREND_RISE: f64 = 0.10;
/// The treatment's true additive effect in the trend studies (rate points).
const EFFECT: f64 = 0.02;
/// The ramp: the treatment's weight in period 0, before [`RAMP_AT`], and in period 1 after.
const RAMP_WEIGHTS: (f64, f64) = (0.10, 0.50);
/// The unit at which the ramp's weights change.
const RAMP_AT: usize = UNITS / 2;
/// The metric (also the bandit's reward).
const METRIC: &str = "resolved";

/// The baseline's rate at unit `t` of the trend studies.
fn trend_rate(t: usize) -> f64 {
    TREND_START + TREND_RISE * count(t as u64) / count(UNITS as u64)
}

/// The true relative lift of the trend studies' estimand, "every unit on T against every unit
/// on B, averaged over the run": EFFECT ÷ the baseline's rate averaged over the run's units.
fn trend_truth() -> f64 {
    let mean_b = (0..UNITS).map(trend_rate).sum::<f64>() / count(UNITS as u64);
    EFFECT / mean_b
}

/// A running experiment whose reports the studies read.
struct Experiment {
    version: ExperimentVersion,
    epochs: Vec<EpochInfo>,
}

impl Experiment {
    fn new(allocation: serde_json::Value, arms: usize) -> anyhow::Result<Self> {
        Self::build(
            allocation,
            arms,
            serde_json::json!([{"key": METRIC, "kind": "binary", "direction": "increase", "role": "primary"}]),
        )
    }

    /// A two-arm experiment with its own metrics.
    fn with_metrics(
        allocation: serde_json::Value,
        metrics: serde_json::Value,
    ) -> anyhow::Result<Self> {
        Self::build(allocation, 2, metrics)
    }

    fn build(
        allocation: serde_json::Value,
        arms: usize,
        metrics: serde_json::Value,
    ) -> anyhow::Result<Self> {
        let arm_json: Vec<serde_json::Value> = (0..arms)
            .map(|i| {
                let role = if i == 0 { "baseline" } else { "treatment" };
                serde_json::json!({"key": arm_key(i), "role": role})
            })
            .collect();
        let spec = ExperimentSpec::parse(&serde_json::json!({
            "key": "calibration-adaptive",
            "arms": arm_json,
            "allocation": allocation,
            "metrics": metrics
        }))
        .map_err(|e| anyhow::anyhow!("the adaptive calibration spec is invalid: {e}"))?;
        let (version, epochs) = started(spec)?;
        Ok(Self { version, epochs })
    }

    fn spec(&self) -> &ExperimentSpec {
        &self.version.spec
    }
}

fn arm_key(i: usize) -> String {
    format!("arm-{i}")
}

/// One simulated run: every period used and each (period, arm)'s per-unit moments.
#[derive(Default)]
struct Run {
    periods: Vec<AllocationPeriod>,
    cells: BTreeMap<(u64, usize), Moments>,
}

/// How the weights change during a run.
enum Changes {
    /// Thompson sampling: `BanditState` recomputes when due.
    Bandit,
    /// A fixed policy whose weights become `weights` at unit `at` (period 1).
    Ramp { at: usize, weights: Vec<f64> },
}

/// Period 1 of a ramp: `period` with the arms' `weights` (in the spec's arm order) from `now`.
fn ramped(
    spec: &ExperimentSpec,
    period: AllocationPeriod,
    weights: &[f64],
    now: i64,
) -> AllocationPeriod {
    AllocationPeriod {
        period: 1,
        weights: spec
            .arms()
            .iter()
            .zip(weights)
            .map(|(a, w)| (a.key().to_string(), *w))
            .collect(),
        opened_at: now,
        ..period
    }
}

/// One aggregate of the calibration's aggregates: `moments` of `metric` in arm `arm`, epoch 0.
fn aggregate(
    arm: usize,
    metric: &str,
    scope: AggScope,
    moments: Moments,
) -> (AggKey, MetricAggregate) {
    (
        AggKey {
            epoch: 0,
            arm: arm_key(arm),
            metric: metric.to_string(),
            scope,
        },
        MetricAggregate {
            moments,
            ipw_weight: 0.0,
            ipw_weighted_sum: 0.0,
        },
    )
}

/// The experiment's report of epoch 0 over these aggregates, assignment counts and periods.
fn report_of(
    experiment: &Experiment,
    aggregates: &[(AggKey, MetricAggregate)],
    assignments: &[PeriodCount],
    periods: &[AllocationPeriod],
) -> Report {
    build_report(&ReportInput {
        version: &experiment.version,
        epoch: 0,
        aggregates,
        tallies: &[],
        assignments,
        periods,
        epochs: &experiment.epochs,
        drift: None,
        pause_reason: None,
    })
}

/// Runs `UNITS` units through `decide`: `rate(arm, unit)` is the chance of a reward.
fn simulate(
    spec: &ExperimentSpec,
    changes: &Changes,
    rate: impl Fn(usize, usize) -> f64,
    rng: &mut StdRng,
    tag: &str,
) -> anyhow::Result<Run> {
    let mut bandit = match changes {
        Changes::Bandit => {
            Some(BanditState::new(spec).context("the calibration spec is not a bandit")?)
        }
        Changes::Ramp { .. } => None,
    };
    let mut period = initial_period(spec, 0);
    let mut run = Run {
        periods: vec![period.clone()],
        ..Run::default()
    };
    for unit in 0..UNITS {
        let now = i64::try_from(unit).unwrap_or(i64::MAX);
        if let Changes::Ramp { at, weights } = changes {
            if unit == *at {
                period = ramped(spec, period, weights, now);
                run.periods.push(period.clone());
            }
        }
        let (assignment, arm) = serve(spec, &period, &format!("{tag}-{unit}"), now)?;
        let reward = f64::from(u8::from(rng.random::<f64>() < rate(arm, unit)));
        run.cells
            .entry((assignment.period, arm))
            .or_default()
            .push(reward);
        if let Some(state) = bandit.as_mut() {
            state.observe(&assignment.arm, reward)?;
            if state.due(spec) {
                period = state.recompute(spec, period.period + 1, now);
                run.periods.push(period.clone());
            }
        }
    }
    Ok(run)
}

/// The report of a run: the `Overall` and `Period` aggregates and per-period assignment counts.
fn report(experiment: &Experiment, run: &Run) -> Report {
    let arms = experiment.spec().arms().len();
    let mut overall = vec![Moments::new(); arms];
    let mut aggregates = Vec::new();
    let mut assignments = Vec::new();
    for (&(period, arm), moments) in &run.cells {
        overall[arm].merge(moments);
        aggregates.push(aggregate(arm, METRIC, AggScope::Period(period), *moments));
        assignments.push(PeriodCount {
            period,
            arm: arm_key(arm),
            count: moments.n(),
        });
    }
    for (arm, moments) in overall.into_iter().enumerate() {
        aggregates.push(aggregate(arm, METRIC, AggScope::Overall, moments));
    }
    report_of(experiment, &aggregates, &assignments, &run.periods)
}

/// Bandit A/A: every arm from the same truth; does any treatment's verdict say better or
/// worse at the end of the run? `Err` when a comparison with enough evidence has no decision.
fn bandit_aa_run(experiment: &Experiment, rng: &mut StdRng, tag: &str) -> anyhow::Result<bool> {
    let run = simulate(
        experiment.spec(),
        &Changes::Bandit,
        |_, _| AA_RATE,
        rng,
        tag,
    )?;
    let report = report(experiment, &run);
    let metric = report.metrics.first().context("no metric")?;
    let mut flagged = false;
    for c in &metric.comparisons {
        if c.verdict != Verdict::Collecting && c.decision.is_none() {
            anyhow::bail!("a comparison with enough evidence has no decision");
        }
        flagged |= matches!(c.verdict, Verdict::Better | Verdict::Worse);
    }
    Ok(flagged)
}

/// Whether each interval of a trend run covers the true lift: the decision's (always-valid,
/// stratified), the stratified estimate's plain 95% normal interval, and the pooled 95%
/// delta-method interval (the report's `relative` diagnostic). `None` for a missing interval;
/// a comparison still `collecting` covers nothing.
type Covers = [Option<bool>; 3];

fn trend_run(
    experiment: &Experiment,
    changes: &Changes,
    rng: &mut StdRng,
    tag: &str,
) -> anyhow::Result<Covers> {
    let run = simulate(
        experiment.spec(),
        changes,
        |arm, t| trend_rate(t) + if arm == 1 { EFFECT } else { 0.0 },
        rng,
        tag,
    )?;
    let report = report(experiment, &run);
    let c = report
        .metrics
        .first()
        .and_then(|m| m.comparisons.first())
        .context("no comparison")?;
    // Below the minimum evidence there is no decision: it counts as not covering.
    Ok(covers(c, trend_truth()))
}

/// The ratio metric of the ratio study: cost (x) over minutes (y).
const RATIO: &str = "cost_per_minute";
/// The treatment's cost per minute relative to the baseline's in the ratio study.
const RATIO_EFFECT: f64 = 0.9;

/// A ramp with a ratio metric: minutes per unit uniform on 5–20 in every arm and period, cost
/// = rate(t) × minutes × a uniform factor on 0.5–1.5, where the baseline's rate rises from 1
/// to 2 over the run and the treatment's is [`RATIO_EFFECT`] of it. The estimand (every unit
/// on T against every unit on B over the run) is Σcost/Σminutes, so the true lift is
/// RATIO_EFFECT − 1 exactly. Returns whether the decision's, the stratified estimate's plain
/// 95% and the pooled 95% intervals cover it.
fn ratio_run(experiment: &Experiment, rng: &mut StdRng, tag: &str) -> anyhow::Result<Covers> {
    let spec = experiment.spec();
    let mut period = initial_period(spec, 0);
    let mut periods = vec![period.clone()];
    // Per (period, arm): the moments of x, of y and of x + y.
    let mut cells: BTreeMap<(u64, usize), [Moments; 3]> = BTreeMap::new();
    for unit in 0..UNITS {
        let now = i64::try_from(unit).unwrap_or(i64::MAX);
        if unit == RAMP_AT {
            period = ramped(spec, period, &[1.0 - RAMP_WEIGHTS.1, RAMP_WEIGHTS.1], now);
            periods.push(period.clone());
        }
        let (assignment, arm) = serve(spec, &period, &format!("{tag}-{unit}"), now)?;
        let minutes = f64::from(rng.random_range(5u32..=20));
        let rate = (1.0 + count(unit as u64) / count(UNITS as u64))
            * if arm == 1 { RATIO_EFFECT } else { 1.0 };
        let cost = rate * minutes * (0.5 + rng.random::<f64>());
        let cell = cells.entry((assignment.period, arm)).or_default();
        cell[0].push(cost);
        cell[1].push(minutes);
        cell[2].push(cost + minutes);
    }
    let mut overall = [[Moments::new(); 3], [Moments::new(); 3]];
    let mut aggregates = Vec::new();
    let mut assignments = Vec::new();
    for (&(p, arm), parts) in &cells {
        let scopes = [
            AggScope::Period(p),
            AggScope::PeriodPaired(p),
            AggScope::PeriodPairSum(p),
        ];
        for (k, scope) in scopes.into_iter().enumerate() {
            overall[arm][k].merge(&parts[k]);
            aggregates.push(aggregate(arm, RATIO, scope, parts[k]));
        }
        assignments.push(PeriodCount {
            period: p,
            arm: arm_key(arm),
            count: parts[0].n(),
        });
    }
    for (arm, parts) in overall.into_iter().enumerate() {
        let scopes = [AggScope::Overall, AggScope::Paired, AggScope::PairSum];
        for (scope, moments) in scopes.into_iter().zip(parts) {
            aggregates.push(aggregate(arm, RATIO, scope, moments));
        }
    }
    let report = report_of(experiment, &aggregates, &assignments, &periods);
    let c = report
        .metrics
        .iter()
        .find(|m| m.key == RATIO)
        .and_then(|m| m.comparisons.first())
        .context("no ratio comparison")?;
    Ok(covers(c, RATIO_EFFECT - 1.0))
}

/// Whether a comparison's decision interval, stratified 95% interval and pooled 95% interval
/// cover `truth` (a comparison still `collecting` covers nothing).
fn covers(c: &liftlab_domain::report::ComparisonResult, truth: f64) -> Covers {
    let z = norm_ppf(0.975);
    let inside = |lo: f64, hi: f64| lo <= truth && truth <= hi;
    if c.verdict == Verdict::Collecting {
        return [
            Some(false),
            Some(false),
            c.relative.map(|r| inside(r.ci_low, r.ci_high)),
        ];
    }
    [
        c.decision.map(|d| inside(d.ci_low, d.ci_high)),
        c.stratified.map(|s| {
            inside(
                s.relative - z * s.relative_se,
                s.relative + z * s.relative_se,
            )
        }),
        c.relative.map(|r| inside(r.ci_low, r.ci_high)),
    ]
}

/// The adaptive-allocation studies: bandit A/A (2 and 3 arms, floors 0.01 and 0.05), a
/// bandit and a ramp under a shared trend with a true effect, and a ramp of a ratio metric.
pub(super) fn adaptive_study(
    pool: &Pool,
    runs: u64,
    alpha: f64,
) -> anyhow::Result<(Vec<Figure>, u64)> {
    let mut figures = Vec::new();
    let mut failed = 0;
    let (lo, hi) = acceptance_range(runs, alpha, 0.99);
    for (i, (arms, floor, id)) in [
        (2, 0.01, "bandit_aa_2_arms_floor_001"),
        (3, 0.01, "bandit_aa_3_arms_floor_001"),
        (2, 0.05, "bandit_aa_2_arms_floor_005"),
        (3, 0.05, "bandit_aa_3_arms_floor_005"),
    ]
    .into_iter()
    .enumerate()
    {
        let experiment = Experiment::new(
            serde_json::json!({"policy": "thompson", "reward": METRIC, "floor": floor}),
            arms,
        )?;
        let study = 40 + u64::try_from(i).unwrap_or(0);
        let results = pool.map(runs, "bandit A/A", |run| {
            let tag = format!("aa{study}-{}-{run}", pool.seed);
            bandit_aa_run(&experiment, &mut pool.rng(study, run), &tag)
        });
        let events = tally(&results, &mut failed);
        figures.push(rate_figure(
            id,
            "adaptive",
            format!(
                "bandit A/A, {arms} identical arms ({:.0}%), floor {floor}: verdict better or worse for any treatment after {UNITS} units",
                AA_RATE * 100.0
            ),
            events,
            runs,
            format!(
                "≤ {:.0}% (always-valid; the 99% binomial range of α would be {:.2}%–{:.2}%)",
                alpha * 100.0,
                count(lo) / count(runs) * 100.0,
                count(hi) / count(runs) * 100.0
            ),
            |value, _, _| value <= alpha,
        ));
    }
    let truth = trend_truth();
    let bandit = Experiment::new(
        serde_json::json!({"policy": "thompson", "reward": METRIC}),
        2,
    )?;
    let ramp = Experiment::new(
        serde_json::json!({"policy": "fixed", "weights": {
            arm_key(0): 1.0 - RAMP_WEIGHTS.0, arm_key(1): RAMP_WEIGHTS.0
        }}),
        2,
    )?;
    let ramp_changes = Changes::Ramp {
        at: RAMP_AT,
        weights: vec![1.0 - RAMP_WEIGHTS.1, RAMP_WEIGHTS.1],
    };
    let setting = format!(
        "rates rising {:.0}% → {:.0}% in both arms over {UNITS} units, treatment +{:.0} pp (true lift {:+.1}%)",
        TREND_START * 100.0,
        (TREND_START + TREND_RISE) * 100.0,
        EFFECT * 100.0,
        truth * 100.0
    );
    let ratio_ramp = Experiment::with_metrics(
        serde_json::json!({"policy": "fixed", "weights": {
            arm_key(0): 1.0 - RAMP_WEIGHTS.0, arm_key(1): RAMP_WEIGHTS.0
        }}),
        serde_json::json!([
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary"},
            {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "secondary"},
            {"key": RATIO, "kind": "cost", "direction": "decrease", "role": "primary",
             "ratio": {"numerator": "cost", "denominator": "minutes"}}
        ]),
    )?;
    let ratio_setting = format!(
        "cost per minute rising from 1 to 2 in both arms over {UNITS} units, treatment {:+.0}% (true lift)",
        (RATIO_EFFECT - 1.0) * 100.0
    );
    for (name, experiment, changes, study, prefix, setting) in [
        (
            "Thompson bandit",
            &bandit,
            &Changes::Bandit,
            50,
            "bandit_trend",
            &setting,
        ),
        (
            "ramp 90/10 then 50/50",
            &ramp,
            &ramp_changes,
            51,
            "ramp_trend",
            &setting,
        ),
        (
            "ramp 90/10 then 50/50, ratio metric",
            &ratio_ramp,
            &ramp_changes,
            52,
            "ratio_ramp",
            &ratio_setting,
        ),
    ] {
        let results: Vec<anyhow::Result<Covers>> = pool.map(runs, name, |run| {
            let tag = format!("tr{study}-{}-{run}", pool.seed);
            let rng = &mut pool.rng(study, run);
            if prefix == "ratio_ramp" {
                ratio_run(experiment, rng, &tag)
            } else {
                trend_run(experiment, changes, rng, &tag)
            }
        });
        let column = |k: usize| -> Vec<Result<bool, ()>> {
            results
                .iter()
                .map(|r| match r {
                    Ok(c) => c[k].ok_or(()),
                    Err(_) => Err(()),
                })
                .collect()
        };
        let [decision, stratified, pooled] = [0, 1, 2].map(|k| tally(&column(k), &mut failed));
        let ids: [&'static str; 3] = match prefix {
            "bandit_trend" => [
                "bandit_trend_decision_coverage",
                "bandit_trend_stratified_coverage",
                "bandit_trend_pooled_coverage",
            ],
            "ramp_trend" => [
                "ramp_trend_decision_coverage",
                "ramp_trend_stratified_coverage",
                "ramp_trend_pooled_coverage",
            ],
            _ => [
                "ratio_ramp_decision_coverage",
                "ratio_ramp_stratified_coverage",
                "ratio_ramp_pooled_coverage",
            ],
        };
        figures.push(rate_figure(
            ids[1],
            "adaptive",
            format!("{name}, {setting}: coverage of the stratified estimate's 95% interval"),
            stratified,
            runs,
            "95% ± 1.5 pp".to_string(),
            |value, _, _| (0.935..=0.965).contains(&value),
        ));
        figures.push(rate_figure(
            ids[0],
            "adaptive",
            format!("{name}: coverage of the decision's interval (always-valid, period-stratified, 95%)"),
            decision,
            runs,
            "≥ 95% − 1.5 pp (always-valid, so wider)".to_string(),
            |value, _, _| value >= 0.935,
        ));
        figures.push(rate_figure(
            ids[2],
            "adaptive",
            format!("{name}: coverage of the naive pooled 95% interval (diagnostic only)"),
            pooled,
            runs,
            "reported: pooled means are confounded by the trend".to_string(),
            |_, _, _| true,
        ));
        if let Some(f) = figures.last_mut() {
            f.met = None;
        }
    }
    Ok((figures, failed))
}
