//! The typed results report whose JSON is DESIGN.md's results shape, plus the extra sections.
//!
//! Why one file of about 850 lines: it is declarations only (plain serde structs with public
//! fields and a few one-line getters), in the order the report's JSON nests them, so the shape is
//! read top to bottom in one place; split, the same declarations would only be spread out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::timeline::Bucket;
use crate::drift::{Detector, EffectEstimate, ShiftDirection};
use crate::model::{Millis, Status};
use crate::spec::{Direction, MetricKind, MetricRole};

/// The results of one experiment epoch, as served at `GET /v1/experiments/{key}/results`.
///
/// Every key is always present (sections that cannot be computed are `null` or empty), except
/// `sequential` inside a comparison, which appears only when the analysis computes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The experiment key.
    pub experiment: String,
    /// Its human-readable name.
    pub name: String,
    /// The spec version the report covers.
    pub version: u64,
    /// The lifecycle status of that version.
    pub status: Status,
    /// The analysis epoch reported on.
    pub epoch: u64,
    /// `fixed` or `thompson`.
    pub policy: String,
    /// One sentence a manager can repeat.
    pub verdict: String,
    /// The treatment arm the verdict and ROI talk about (the one most likely to beat the
    /// baseline on the primary metric).
    pub featured_arm: Option<String>,
    /// Why the experiment is paused, when it is.
    pub pause_reason: Option<String>,
    /// Problems a reader must know before trusting the numbers (SRM, attrition, harm, drift).
    pub warnings: Vec<Warning>,
    /// Assignment per arm.
    pub arms: Vec<ArmSummary>,
    /// Sample ratio mismatch of assigned units against the expected shares.
    pub srm: SrmResult,
    /// Outcome coverage per arm and the differential-attrition test.
    pub attrition: Attrition,
    /// How the decisions are made: method, level, correction and family, planned units.
    pub analysis: AnalysisSummary,
    /// Per-metric results in the spec's order.
    pub metrics: Vec<MetricResult>,
    /// Each guardrail comparison with its status.
    pub guardrails: Vec<GuardrailStatus>,
    /// The first guardrail the harm test finds significantly worse, if any.
    pub harm: Option<Harm>,
    /// Level drift detections of the epoch (workload drift).
    pub drift: Vec<DriftEntry>,
    /// Changes in a treatment's effect detected in the epoch: what re-baselining acts on.
    pub effect_drift: Vec<EffectDriftEntry>,
    /// Money: cost per case, savings, hours saved, automation coverage.
    pub roi: Option<RoiResult>,
    /// Quality-adjusted productivity per arm.
    pub productivity: Productivity,
    /// Power of the primary metric at the spec's minimum detectable effect.
    pub power: Option<PowerResult>,
    /// Allocation weights and units assigned per allocation period.
    pub allocation: Vec<AllocationEntry>,
    /// Whether the allocation is adaptive (a bandit), so `ipw_mean` is shown beside `mean`.
    pub bandit: bool,
    /// Whether the allocation changed during the epoch (a bandit, or ramped weights), so the
    /// decisions are stratified by allocation period.
    #[serde(default)]
    pub stratified: bool,
    /// For a bandit: the arms ranked by their chance of being best on the primary metric.
    #[serde(default)]
    pub bandit_leaderboard: Option<Leaderboard>,
    /// Breakdowns by the spec's segment attributes.
    pub segments: Vec<SegmentBreakdown>,
    /// Every epoch of the experiment.
    pub epochs: Vec<EpochEntry>,
    /// The primary metric per arm and UTC hour or day of this epoch.
    pub timeline: Vec<TimelinePoint>,
}

/// How the report's decisions are made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalysisSummary {
    /// `sequential` (the default) or `fixed`.
    pub method: DecisionMethod,
    /// The spec's significance level.
    pub alpha: f64,
    /// `none`, `holm` or `bh`.
    pub correction: crate::spec::Correction,
    /// The metrics whose two-sided decisions are corrected together (primary and secondary).
    pub family: Vec<String>,
    /// Comparisons in the family (metrics × treatments).
    pub family_size: usize,
    /// The total units the fixed-horizon design planned for (only when `method` is `fixed`).
    pub planned_units: Option<u64>,
    /// Units assigned so far in the epoch, all arms together.
    pub units: u64,
    /// True for a fixed-horizon design that has reached `planned_units`: only then is its answer final.
    pub final_answer: bool,
}

/// What a warning is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// The experiment is paused.
    Paused,
    /// Assigned units do not match the expected shares.
    Srm,
    /// Arms report outcomes for different shares of their units.
    Attrition,
    /// A guardrail got significantly worse.
    Guardrail,
    /// A guardrail is significantly worse under the sequential test (harm).
    Harm,
    /// A metric drifted during the epoch.
    Drift,
    /// A treatment's effect changed during the epoch (the AI arm's advantage changed).
    EffectDrift,
    /// A segment's favourable-outcome rate is below four fifths of the best segment's.
    DisparateImpact,
    /// Too few units to compare yet.
    LowData,
    /// A segment is significantly harmed on the primary metric.
    Segment,
    /// A fixed-horizon design has not reached its planned units, so its answer is not final.
    NotFinal,
    /// Outcomes of the baseline arm say AI handled them: the baseline may be contaminated.
    Contamination,
    /// The weights of a fixed policy changed during the epoch, so estimates are stratified by
    /// allocation period.
    Ramped,
    /// Within one allocation period, assigned units do not match that period's weights.
    PeriodSrm,
}

/// A problem a reader must know about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    /// What it is about.
    pub kind: WarningKind,
    /// A sentence for people.
    pub message: String,
}

/// One arm's assignment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmSummary {
    /// The arm key.
    pub key: String,
    /// `baseline` or `treatment`.
    pub role: crate::spec::ArmRole,
    /// Units assigned during the epoch.
    pub assigned: u64,
    /// The share of units the allocation meant to send here (propensity-weighted under a bandit).
    pub expected_share: f64,
    /// Outcomes by who said they handled them (outcomes that did not say are not counted).
    #[serde(default)]
    pub handled_by: BTreeMap<crate::model::HandledBy, u64>,
}

/// The sample-ratio-mismatch check.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SrmResult {
    /// Σ(observed − expected)²/expected.
    pub chi2: f64,
    /// P(χ²_{k−1} > chi2).
    pub p_value: f64,
    /// False when p_value < 0.001.
    pub ok: bool,
}

/// Outcome coverage per arm and whether it differs between arms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attrition {
    /// Per arm: units assigned, units with an outcome, and their ratio.
    pub arms: Vec<Coverage>,
    /// Chi-square statistic of outcome/no-outcome by arm.
    pub chi2: f64,
    /// Its p-value (1 when there is nothing to compare).
    pub p_value: f64,
    /// False when the p-value is below [`ATTRITION_ALPHA`](crate::report::ATTRITION_ALPHA).
    pub ok: bool,
}

/// One arm's outcome coverage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// The arm key.
    pub arm: String,
    /// Units assigned during the epoch.
    pub assigned: u64,
    /// Units with at least one outcome.
    pub with_outcome: u64,
    /// with_outcome / assigned (`null` when nothing was assigned).
    pub coverage: Option<f64>,
}

/// The results of one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricResult {
    /// The metric key.
    pub key: String,
    /// Its kind.
    pub kind: MetricKind,
    /// Which way is better.
    pub direction: Direction,
    /// Primary, guardrail or secondary.
    pub role: MetricRole,
    /// Per-arm summaries in the spec's arm order.
    pub arms: Vec<ArmStats>,
    /// Each treatment against the baseline.
    pub comparisons: Vec<ComparisonResult>,
}

impl Evidence {
    /// What is still missing, for people: "12 of 30 units per arm", "1 of 5 cases each way per
    /// arm", or both; empty when there is enough.
    pub fn shortfall(&self) -> String {
        let mut parts = Vec::new();
        if self.units < self.min_units {
            parts.push(format!(
                "{} of {} units per arm",
                self.units, self.min_units
            ));
        }
        if let (Some(have), Some(need)) = (self.outcomes_each_way, self.min_each_way) {
            if have < need {
                parts.push(format!("{have} of {need} cases each way per arm"));
            }
        }
        parts.join(", ")
    }
}

/// One arm's summary of one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmStats {
    /// The arm key.
    pub arm: String,
    /// Units with a value.
    pub n: u64,
    /// The mean per unit.
    pub mean: f64,
    /// The sample standard deviation (n − 1).
    pub sd: f64,
    /// The Hájek inverse-propensity mean (only under a bandit; `null` otherwise).
    pub ipw_mean: Option<f64>,
}

/// A point estimate with its interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The point estimate.
    pub estimate: f64,
    /// The lower end.
    pub ci_low: f64,
    /// The upper end.
    pub ci_high: f64,
}

/// better | worse | inconclusive | collecting, read through the metric's direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The decision interval excludes 0 on the favourable side.
    Better,
    /// The decision interval excludes 0 (a guardrail: the harm tolerance) on the harmful side.
    Worse,
    /// Enough evidence to test, and the decision interval does not exclude 0.
    Inconclusive,
    /// Below the minimum evidence per arm: no verdict yet.
    Collecting,
}

impl Verdict {
    /// The verdict as written in JSON and CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Collecting => "collecting",
        }
    }
}

/// How a decision was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionMethod {
    /// Always-valid confidence sequences (safe to look at any time): the default.
    Sequential,
    /// A fixed-horizon t test, final only at the spec's `planned_units`.
    Fixed,
    /// Always-valid confidence sequences on the lift stratified by allocation period (each
    /// period's arms compared within it, combined with weights by the period's share of
    /// units): the method when the allocation changed (a bandit, or ramped weights).
    Stratified,
}

impl DecisionMethod {
    /// The method as written in JSON and CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionMethod::Sequential => "sequential",
            DecisionMethod::Fixed => "fixed",
            DecisionMethod::Stratified => "stratified",
        }
    }

    /// The interval's name for people: `always-valid`, `fixed-horizon` or
    /// `always-valid, period-stratified`.
    pub fn interval_name(self) -> &'static str {
        match self {
            DecisionMethod::Sequential => "always-valid",
            DecisionMethod::Fixed => "fixed-horizon",
            DecisionMethod::Stratified => "always-valid, period-stratified",
        }
    }
}

/// What the decision tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionTest {
    /// Any difference, either way (primary and secondary metrics); part of the corrected family.
    TwoSided,
    /// Harm beyond the guardrail's tolerance, one-sided, outside the family.
    Harm,
}

/// The one answer of a comparison: the verdict, the headline, the tables, the forest plot, the
/// CSV and the CLI all show this interval and p-value, on the relative-lift scale.
///
/// For a two-sided decision, `ci_low`/`ci_high` exclude 0 exactly when `p_value` < `alpha`, and
/// then the verdict is better or worse by the side. For a guardrail's harm test the harmful
/// end lies beyond `threshold` exactly when `p_value` < `alpha`, and then the verdict is worse.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// `sequential`, `fixed` or `stratified`.
    pub method: DecisionMethod,
    /// `two_sided` or `harm`.
    pub test: DecisionTest,
    /// The relative lift (mean_T − mean_B)/|mean_B|.
    pub estimate: f64,
    /// The lower end of the decision interval (never below −1 for a metric that cannot be negative).
    pub ci_low: f64,
    /// The upper end.
    pub ci_high: f64,
    /// The p-value the verdict reads: adjusted across the family for a two-sided test, the
    /// one-sided harm p-value for a guardrail.
    pub p_value: f64,
    /// The significance level it is compared with (the spec's alpha).
    pub alpha: f64,
    /// The confidence level of the interval: 1 − alpha, widened for multiple testing to the
    /// level that matches the adjusted p-value (1 − 2·alpha for a guardrail's two one-sided bounds).
    pub interval_level: f64,
    /// The relative lift the harmful end is tested against (−max_harm or +max_harm; 0 for a
    /// two-sided test).
    pub threshold: f64,
}

/// How much evidence an arm pair has, against the minimum a verdict needs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The fewest units with a value in the baseline or the treatment arm.
    pub units: u64,
    /// The minimum units per arm ([`MIN_UNITS_PER_ARM`](crate::report::MIN_UNITS_PER_ARM)).
    pub min_units: u64,
    /// For a binary metric, the fewest successes or failures in either arm.
    pub outcomes_each_way: Option<u64>,
    /// For a binary metric, the minimum of each ([`MIN_EACH_WAY`](crate::report::MIN_EACH_WAY)).
    pub min_each_way: Option<u64>,
    /// True when both minimums are met.
    pub enough: bool,
}

/// Standardized effect sizes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EffectSize {
    /// Cohen's d.
    pub cohens_d: f64,
    /// Hedges' g.
    pub hedges_g: f64,
    /// Cohen's h (binary metrics only).
    pub cohens_h: Option<f64>,
}

/// gbstats' Bayesian model on the relative lift.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BayesResult {
    /// P(the treatment is better), read through the metric's direction.
    pub chance_to_win: f64,
    /// Expected loss (relative) of keeping the baseline.
    pub risk_control: f64,
    /// Expected loss (relative) of shipping the treatment.
    pub risk_treatment: f64,
    /// The lower end of the credible interval of the relative lift.
    pub ci_low: f64,
    /// The upper end.
    pub ci_high: f64,
}

/// The always-valid (sequential) results on the absolute difference.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequentialResult {
    /// The always-valid p-value.
    pub p_value: f64,
    /// It, adjusted across metrics by the spec's correction.
    pub p_value_adjusted: Option<f64>,
    /// The lower end of the confidence sequence of the absolute difference.
    pub ci_low: f64,
    /// The upper end.
    pub ci_high: f64,
    /// The confidence sequence of the relative lift, when the baseline mean is not 0.
    pub relative: Option<Interval>,
}

/// One treatment against the baseline on one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparisonResult {
    /// The treatment arm.
    pub arm: String,
    /// The baseline arm.
    pub baseline: String,
    /// mean_T − mean_B with Welch's interval.
    pub absolute: Option<Interval>,
    /// (mean_T − mean_B)/|mean_B| with the delta-method interval.
    pub relative: Option<Interval>,
    /// Welch's two-sided p-value.
    pub p_value: Option<f64>,
    /// The p-value adjusted by the spec's correction.
    pub p_value_adjusted: Option<f64>,
    /// better | worse | inconclusive | collecting, from `decision` alone.
    pub verdict: Verdict,
    /// The one answer every view shows (`null` while collecting or when the lift is undefined).
    pub decision: Option<Decision>,
    /// The evidence against the minimum a verdict needs.
    pub evidence: Evidence,
    /// Standardized effect sizes.
    pub effect_size: Option<EffectSize>,
    /// Bayesian chance to win and risks (`null` while collecting).
    pub bayes: Option<BayesResult>,
    /// Always-valid results on both scales (diagnostics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<SequentialResult>,
    /// The CUPED adjustment the decision uses, for a metric with a covariate.
    #[serde(default)]
    pub cuped: Option<CupedResult>,
    /// The estimate stratified by allocation period that the decision uses when the
    /// allocation changed (a bandit, or ramped weights); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stratified: Option<StratifiedResult>,
    /// Why something above is missing.
    pub note: Option<String>,
}

/// A comparison stratified by allocation period: the estimand is "every unit on the
/// treatment against every unit on the baseline, averaged over the run", each period
/// weighted by its share of units.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StratifiedResult {
    /// The baseline's stratified mean μ_B.
    pub baseline_mean: f64,
    /// The treatment's stratified mean μ_T.
    pub treatment_mean: f64,
    /// μ_T − μ_B.
    pub absolute: f64,
    /// Its standard error.
    pub absolute_se: f64,
    /// (μ_T − μ_B)/|μ_B| (the decision's estimate).
    pub relative: f64,
    /// Its delta-method standard error.
    pub relative_se: f64,
    /// Allocation periods after merging those in which an arm had fewer than 25 units
    /// ([`MIN_UNITS_PER_STRATUM`](crate::report::MIN_UNITS_PER_STRATUM)).
    pub strata: usize,
}

/// One arm on the bandit leaderboard: its mean stratified by allocation period, the chance
/// that it is the best arm and its expected loss, from normal posteriors (flat prior) on the
/// stratified means.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardEntry {
    /// The arm key.
    pub arm: String,
    /// Its stratified mean of the primary metric.
    pub mean: f64,
    /// The standard error of that mean.
    pub se: f64,
    /// P(this arm is the best), read through the metric's direction.
    pub prob_best: f64,
    /// E[(leading other arm − this arm)⁺] in the metric's unit, read through its direction:
    /// what choosing this arm costs if another is better (0 is no loss).
    pub expected_loss: f64,
}

/// The bandit leaderboard of the primary metric, best first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// The metric ranked (the spec's primary metric).
    pub metric: String,
    /// Allocation periods after merging short ones.
    pub strata: usize,
    /// Arms, most likely best first.
    pub arms: Vec<LeaderboardEntry>,
}

/// The CUPED (regression on a pre-experiment covariate) adjustment of a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CupedResult {
    /// The pooled regression coefficient θ = Cov(x, y)/Var(y).
    pub theta: f64,
    /// The adjusted relative lift (the decision's estimate).
    pub estimate: f64,
    /// Its standard error.
    pub se: f64,
    /// The standard error of the unadjusted relative lift.
    pub se_unadjusted: f64,
    /// 1 − (se / se_unadjusted)²: the share of the lift's variance the covariate removed.
    pub variance_reduction: f64,
}

/// A guardrail comparison and whether it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardrailStatus {
    /// The guardrail metric.
    pub metric: String,
    /// The treatment arm.
    pub arm: String,
    /// Its verdict from the harm test: worse, inconclusive (no significant harm) or collecting.
    pub verdict: Verdict,
    /// The harm test's decision, when there is enough evidence.
    pub decision: Option<Decision>,
    /// The tolerated harm (relative), from the spec's `max_harm`.
    pub max_harm: f64,
    /// False when the guardrail is significantly worse.
    pub ok: bool,
}

/// A guardrail whose harm test finds it significantly worse (the first one, in spec order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Harm {
    /// The guardrail metric.
    pub metric: String,
    /// The treatment arm that harms it.
    pub arm: String,
    /// The harm test's one-sided p-value.
    pub p_value: f64,
    /// The decision interval of the relative lift.
    pub ci_low: f64,
    /// Its upper end.
    pub ci_high: f64,
}

/// What was done about a drift detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftAction {
    /// Workload drift: an arm's level moved, which a change shared by all arms causes as
    /// well; reported, never a reason to re-baseline by itself.
    WorkloadDrift,
    /// A re-baseline is proposed (the epoch is still current).
    RebaselineProposed,
    /// A later epoch exists, so the experiment was re-baselined.
    Rebaselined,
}

/// One drift detection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftEntry {
    /// The metric that drifted.
    pub metric: String,
    /// The arm it drifted in.
    pub arm: String,
    /// The timestamp (RFC 3339) of the event at which it was detected.
    pub detected_at: String,
    /// The same instant in Unix milliseconds.
    pub detected_at_ms: Millis,
    /// up | down.
    pub direction: ShiftDirection,
    /// Which detector fired.
    pub detector: Detector,
    /// What was done.
    pub action: DriftAction,
}

/// One detected change in a treatment's effect (relative lift over the baseline).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EffectDriftEntry {
    /// The metric whose effect changed.
    pub metric: String,
    /// The treatment arm.
    pub arm: String,
    /// The baseline arm.
    pub baseline: String,
    /// The timestamp (RFC 3339) of the event at which it was detected.
    pub detected_at: String,
    /// The same instant in Unix milliseconds.
    pub detected_at_ms: Millis,
    /// The reference effect, with its 95% interval.
    pub effect_before: EffectEstimate,
    /// The effect since the estimated change point, with its 95% interval.
    pub effect_after: EffectEstimate,
    /// What was done: re-baselining proposed, or done.
    pub action: DriftAction,
}

/// Money and time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoiResult {
    /// ISO 4217 code of the amounts.
    pub currency: String,
    /// The cost metric, if any.
    pub cost_metric: Option<String>,
    /// The duration metric, if any.
    pub duration_metric: Option<String>,
    /// Cases per month.
    pub volume_per_month: f64,
    /// Cost of one hour of human work.
    pub human_cost_per_hour: f64,
    /// Mean cost per case (unit) per arm.
    pub cost_per_case: BTreeMap<String, f64>,
    /// The same with its t interval per arm.
    pub cost_per_case_ci: BTreeMap<String, Interval>,
    /// The treatment arm the savings below are for.
    pub arm: Option<String>,
    /// What the savings are computed from.
    pub savings_basis: Option<SavingsBasis>,
    /// Gross savings: the per-case saving × volume per month, with the interval of the cost
    /// (or duration) metric's decision, so it agrees with that metric's verdict.
    pub monthly_savings: Option<Interval>,
    /// What running the AI arm costs a month regardless of volume (the spec's `fixed_monthly_cost`).
    pub fixed_monthly_cost: f64,
    /// Gross savings minus the fixed monthly cost.
    pub net_monthly_savings: Option<Interval>,
    /// Cases a month at which net savings reach zero (`null` when a case saves nothing).
    pub break_even_volume: Option<f64>,
    /// (baseline − treatment duration) in hours × volume per month.
    pub hours_saved_per_month: Option<Interval>,
    /// Hours saved × human cost per hour.
    pub labour_savings_per_month: Option<Interval>,
    /// Share of outcomes handled by AI per arm (outcomes that said who handled them).
    pub automation_coverage: BTreeMap<String, f64>,
    /// Savings of every treatment arm.
    pub by_arm: Vec<ArmSavings>,
}

/// What monthly savings are computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SavingsBasis {
    /// The difference in the ROI cost metric per case.
    CostMetric,
    /// Hours saved on the ROI duration metric times the human cost per hour.
    HumanTime,
}

/// Savings of one treatment arm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmSavings {
    /// The treatment arm.
    pub arm: String,
    /// Monthly savings on the basis of [`RoiResult::savings_basis`].
    pub monthly_savings: Option<Interval>,
    /// Hours saved per month.
    pub hours_saved_per_month: Option<Interval>,
}

/// Quality-adjusted productivity per arm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Productivity {
    /// The binary metrics whose favourable outcome counts as quality.
    pub quality_metrics: Vec<String>,
    /// Per-arm figures.
    pub arms: Vec<ArmProductivity>,
}

/// One arm's quality-adjusted productivity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmProductivity {
    /// The arm key.
    pub arm: String,
    /// Units with an outcome (completed cases).
    pub completed: u64,
    /// The share of cases that met quality: the product over quality metrics of the
    /// favourable rate (assumes the metrics are independent).
    pub quality_share: Option<f64>,
    /// completed × quality_share.
    pub quality_adjusted_cases: Option<f64>,
    /// Quality-adjusted cases per hour of handling time (needs the ROI duration metric).
    pub quality_adjusted_per_hour: Option<f64>,
}

/// Power of the primary metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PowerResult {
    /// The primary metric.
    pub metric: String,
    /// The spec's minimum detectable effect (relative).
    pub mde: f64,
    /// The spec's target power.
    pub target_power: f64,
    /// The spec's alpha.
    pub alpha: f64,
    /// `fixed` or `sequential`.
    pub design: String,
    /// The smallest number of units with an outcome over the baseline and treatment arms.
    pub n_per_arm: u64,
    /// Power to detect the mde with n_per_arm units per arm.
    pub achieved_power: Option<f64>,
    /// Units per arm needed for the target power.
    pub needed_per_arm: Option<f64>,
    /// More units (all arms together) needed to reach the target power.
    pub more_units_needed: Option<u64>,
    /// The relative effect detectable now with the target power.
    pub mde_now: Option<f64>,
    /// Why something above is missing.
    pub note: Option<String>,
}

/// One allocation period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocationEntry {
    /// The period number.
    pub period: u64,
    /// When it opened (RFC 3339).
    pub opened_at: String,
    /// The same instant in Unix milliseconds.
    pub opened_at_ms: Millis,
    /// Weights per arm.
    pub weights: BTreeMap<String, f64>,
    /// Units assigned per arm during the epoch under these weights.
    pub assigned: BTreeMap<String, u64>,
    /// Sample ratio mismatch within this entry: its assigned units against its own weights
    /// (`null` when it assigned no unit).
    #[serde(default)]
    pub srm: Option<SrmResult>,
}

/// The breakdown by one segment attribute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentBreakdown {
    /// The attribute.
    pub attribute: String,
    /// The primary metric per value (at most [`MAX_SEGMENT_VALUES`](crate::report::MAX_SEGMENT_VALUES),
    /// the rest merged as `other`).
    pub values: Vec<SegmentValue>,
    /// Cochran's Q of the primary metric's relative lift across values, per treatment.
    pub heterogeneity: Vec<Heterogeneity>,
    /// The disparate-impact ratio of each favourable binary outcome across values, per arm.
    pub disparate_impact: Vec<DisparateImpactEntry>,
}

/// The primary metric within one segment value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentValue {
    /// The attribute value (or `other`).
    pub value: String,
    /// Per-arm summaries.
    pub arms: Vec<ArmStats>,
    /// The relative lift of each treatment.
    pub lifts: Vec<SegmentLift>,
}

/// A treatment's relative lift within one segment value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentLift {
    /// The treatment arm.
    pub arm: String,
    /// The relative lift with its interval.
    pub relative: Option<Interval>,
    /// Its p-value.
    pub p_value: Option<f64>,
}

/// Cochran's Q across one attribute's values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heterogeneity {
    /// The treatment arm.
    pub arm: String,
    /// Q.
    pub q: f64,
    /// Degrees of freedom.
    pub df: f64,
    /// P(χ²_df > Q).
    pub p_value: f64,
    /// I².
    pub i_squared: f64,
}

/// The disparate-impact ratio of a favourable binary outcome in one arm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DisparateImpactEntry {
    /// The binary metric.
    pub metric: String,
    /// The arm.
    pub arm: String,
    /// min rate / max rate over values with enough units.
    pub ratio: f64,
    /// The value with the lowest favourable rate.
    pub least_favoured: String,
    /// The value with the highest favourable rate.
    pub most_favoured: String,
    /// True when the ratio is below 0.8 (the four-fifths rule).
    pub flagged: bool,
}

/// One epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochEntry {
    /// The epoch number.
    pub epoch: u64,
    /// Why it started.
    pub reason: String,
    /// When (RFC 3339).
    pub started_at: String,
    /// The same instant in Unix milliseconds.
    pub started_at_ms: Millis,
    /// The spec version in force when it started.
    pub version: u64,
    /// True for the epoch this report covers.
    pub current: bool,
}

/// One arm's mean of the primary metric over one hour or one day (UTC).
///
/// All points of an epoch share one bucket: hours when the epoch's data spans less than
/// [`HOURLY_SPAN_HOURS`](super::HOURLY_SPAN_HOURS) (so that a short history is a
/// line, not one dot per arm), days otherwise. `day` and `date` name the UTC day the bucket
/// lies in either way; `start` says where an hourly point lies within it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// The epoch.
    pub epoch: u64,
    /// `hour` or `day`: how long the bucket is.
    pub bucket: Bucket,
    /// When the bucket starts, RFC 3339 UTC (midnight for a day).
    pub start: String,
    /// When the bucket starts, Unix milliseconds.
    pub start_ms: Millis,
    /// The UTC day the bucket lies in, as days since the Unix epoch.
    pub day: i64,
    /// That day, YYYY-MM-DD.
    pub date: String,
    /// The arm.
    pub arm: String,
    /// Events received in the bucket.
    pub n: u64,
    /// Their mean.
    pub mean: f64,
}
