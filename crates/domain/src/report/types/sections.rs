//! The report's further sections: drift, ROI and productivity, power, allocation, segments, epochs and the timeline.

use super::*;

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
