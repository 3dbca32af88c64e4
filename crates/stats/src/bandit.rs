//! Bandit helpers: probability of being best by deterministic quadrature (normal and Beta posteriors), the additive weight floor, and Hájek inverse-propensity means.

use serde::{Deserialize, Serialize};

use crate::bayes::NormalPrior;
use crate::error::StatsError;
use crate::moments::SampleStats;

/// P(arm i has the largest value) for independent normal posteriors given
/// as (mean, sd), by deterministic Gauss–Legendre quadrature (absolute error
/// below 1e-8 in the reference tests). The result sums to 1.
pub fn prob_best(arms: &[(f64, f64)]) -> Result<Vec<f64>, StatsError> {
    todo!("{arms:?}")
}

/// P(arm i has the largest rate) for independent Beta(alpha, beta)
/// posteriors of Bernoulli rewards, by deterministic quadrature.
pub fn beta_prob_best(arms: &[(f64, f64)]) -> Result<Vec<f64>, StatsError> {
    todo!("{arms:?}")
}

/// The additive floor p_i = f + (1 − K·f)·w_i of gbstats (the weights are
/// normalized first). Gives uniform 1/K when K·f ≥ 1 or the weights do not
/// sum to a positive finite number; a negative (or NaN) f counts as 0.
pub fn floor_weights(weights: &[f64], floor: f64) -> Vec<f64> {
    todo!("{weights:?}{floor}")
}

/// The normal posterior (mean, sd) of an arm's mean under a proper normal
/// prior, as gbstats' bandits compute it (production prior N(0, 1e4)).
pub fn normal_arm_posterior(
    arm: &SampleStats,
    prior: NormalPrior,
) -> Result<(f64, f64), StatsError> {
    todo!("{arm:?}{prior:?}")
}

/// A streaming Hájek (self-normalized inverse-propensity) estimate of one
/// arm's mean: Σ(y/π)/Σ(1/π) over the units served that arm with
/// propensity π, with a linearization standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hajek {
    n: u64,
    sum_w: f64,
    sum_wy: f64,
    sum_w2: f64,
    sum_w2y: f64,
    sum_w2y2: f64,
}

/// A Hájek estimate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HajekEstimate {
    /// The weighted mean.
    pub mean: f64,
    /// Its linearization standard error.
    pub se: f64,
    /// The effective sample size (Σw)²/Σw².
    pub effective_n: f64,
}

impl Hajek {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a unit with outcome `y` served with propensity `propensity` in (0, 1].
    pub fn push(&mut self, y: f64, propensity: f64) -> Result<(), StatsError> {
        todo!("{y}{propensity}")
    }

    /// Removes a unit pushed before (the inverse of `push`).
    pub fn remove(&mut self, y: f64, propensity: f64) -> Result<(), StatsError> {
        todo!("{y}{propensity}")
    }

    /// Merges another accumulator into this one.
    pub fn merge(&mut self, other: &Hajek) {
        todo!("{other:?}")
    }

    /// The number of units.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The estimate; needs at least 2 units.
    pub fn estimate(&self) -> Result<HajekEstimate, StatsError> {
        todo!()
    }
}
