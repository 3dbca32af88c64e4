//! The results of one metric: arm statistics, comparisons with their decision and evidence, the stratified and CUPED estimates, the bandit leaderboard and guardrails.

use super::*;

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
