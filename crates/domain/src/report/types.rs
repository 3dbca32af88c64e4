//! The typed results report whose JSON is DESIGN.md's results shape, plus the extra sections.
//!
//! This file holds the report and its summary sections; `comparison.rs` holds one metric's
//! results and `sections.rs` the further sections.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::timeline::Bucket;
use crate::drift::{Detector, EffectEstimate, ShiftDirection};
use crate::model::{Millis, Status};
use crate::spec::{Direction, MetricKind, MetricRole};

mod comparison;
mod sections;
pub use comparison::*;
pub use sections::*;

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
