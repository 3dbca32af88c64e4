//! Power analysis: sample size per arm, achieved power and minimum detectable effect, fixed and sequential, plus gbstats' mid-experiment scaling factor.

use serde::{Deserialize, Serialize};

use crate::bayes::NormalPrior;
use crate::error::StatsError;
use crate::frequentist::Alternative;
use crate::moments::SampleStats;

/// How the experiment will be analysed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Design {
    /// One look at a fixed horizon.
    #[default]
    Fixed,
    /// Continuous monitoring with the confidence sequence of tuning `tau`.
    Sequential {
        /// The tuning parameter τ (gbstats' default is 5000).
        tau: f64,
    },
}

/// Settings shared by the power functions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PowerSettings {
    /// The significance level.
    pub alpha: f64,
    /// The alternative of the planned test.
    pub alternative: Alternative,
    /// Fixed horizon or sequential.
    pub design: Design,
    /// Whether the effect is relative ((μ_T − μ_B)/μ_B) or absolute.
    pub relative: bool,
}

impl Default for PowerSettings {
    /// Two-sided, alpha 0.05, fixed horizon, relative effect (GrowthBook's calculator).
    fn default() -> Self {
        Self {
            alpha: 0.05,
            alternative: Alternative::TwoSided,
            design: Design::Fixed,
            relative: true,
        }
    }
}

/// The baseline metric a power calculation assumes: per-unit mean and
/// variance (p(1−p) for a conversion rate), shared by both arms.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The per-unit mean of the baseline arm.
    pub mean: f64,
    /// The per-unit variance.
    pub variance: f64,
}

impl Baseline {
    /// A binary metric with conversion rate `p`: variance p(1−p).
    pub fn proportion(p: f64) -> Self {
        Self {
            mean: p,
            variance: p * (1.0 - p),
        }
    }
}

/// GrowthBook's `frequentistVariance`: the variance of the estimated effect
/// (absolute var_a/n_a + var_b/n_b, or the delta-method relative variance).
pub fn frequentist_variance(
    a: &SampleStats,
    b: &SampleStats,
    relative: bool,
) -> Result<f64, StatsError> {
    todo!("{a:?}{b:?}{relative}")
}

/// The power to detect `effect` (on the scale `settings.relative` chooses)
/// with `n_per_arm` units in each of the two compared arms.
pub fn achieved_power(
    baseline: &Baseline,
    effect: f64,
    n_per_arm: f64,
    settings: &PowerSettings,
) -> Result<f64, StatsError> {
    todo!("{baseline:?}{effect}{n_per_arm}{settings:?}")
}

/// The minimum detectable effect at `power` with `n_per_arm` units per arm:
/// positive for two-sided and `Greater`, negative for `Less`.
pub fn mde_at(
    baseline: &Baseline,
    n_per_arm: f64,
    power: f64,
    settings: &PowerSettings,
) -> Result<f64, StatsError> {
    todo!("{baseline:?}{n_per_arm}{power}{settings:?}")
}

/// The number of units per arm (a real number; round up) that gives `power`
/// to detect `effect`.
pub fn sample_size_per_arm(
    baseline: &Baseline,
    effect: f64,
    power: f64,
    settings: &PowerSettings,
) -> Result<f64, StatsError> {
    todo!("{baseline:?}{effect}{power}{settings:?}")
}

/// Settings of gbstats' mid-experiment power analysis.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MidExperimentSettings {
    /// The target power.
    pub target_power: f64,
    /// The target minimum detectable effect (relative).
    pub target_mde: f64,
    /// The significance level.
    pub alpha: f64,
    /// The number of goal metrics (a Bonferroni-style split of alpha).
    pub num_goal_metrics: u32,
    /// The number of variations including control.
    pub num_variations: u32,
    /// Fixed or sequential frequentist analysis; ignored when `prior` is set.
    pub design: Design,
    /// A proper prior on the relative lift selects the Bayesian calculation.
    pub prior: Option<NormalPrior>,
}

/// gbstats' mid-experiment "scaling factor": how many times the current
/// pairwise sample must be added to reach the target power for the target MDE.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MidExperimentPower {
    /// Additional users = scaling_factor × current pairwise n.
    pub scaling_factor: f64,
    /// The power reached at that factor.
    pub power: f64,
}

/// Runs gbstats' mid-experiment power search on the current arm statistics.
pub fn mid_experiment_power(
    control: &SampleStats,
    treatment: &SampleStats,
    settings: &MidExperimentSettings,
) -> Result<MidExperimentPower, StatsError> {
    todo!("{control:?}{treatment:?}{settings:?}")
}
