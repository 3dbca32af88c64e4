//! liftlab-stats: pure statistics over sufficient statistics; no IO, no clock, no global RNG.
//!
//! Every function takes sufficient statistics (n, Σx, Σx², and Σxy, Σy,
//! Σy² where a covariate or denominator is involved) and returns finite
//! numbers or a [`StatsError`] saying why not. The only infinities are the
//! documented open ends of one-sided intervals.
//!
//! # API overview
//!
//! Accumulators ([`moments`]), persisted by the store:
//! - [`Moments`]: `new`, `push(x)`, `remove(x) -> Result`, `merge(&other)`,
//!   `from_sums(n, sum, sum_sq)`, `n() -> u64`, `mean`, `variance` (n−1),
//!   `sd`, `sum`.
//! - [`CoMoments`]: the same over (x, y) pairs, plus `covariance`, `x()`, `y()`,
//!   and `from_moments` (the parts of x and y with their co-moment).
//! - [`SampleStats`] `{ n, mean, variance }`: the input of comparisons;
//!   `From<&Moments>`, `from_sums`, `proportion(n, successes)` (variance
//!   p(1−p), ddof 0).
//!
//! Comparisons (control = baseline B, treatment = T):
//! - [`welch_absolute`], [`relative_lift`] `(control, treatment, alpha,
//!   Alternative) -> Result<Estimate>`; [`t_test`] and [`welch_dof`] underneath.
//! - [`effect_sizes`]`(control, treatment, binary) -> Result<EffectSizes>`.
//! - [`ratio_stats`]`(&CoMoments) -> Result<SampleStats>` (delta method with
//!   covariance) and [`cuped`]`(&CoMoments, &CoMoments) -> Result<Cuped>`
//!   (pooled θ; `Cuped::absolute`, `Cuped::relative`; [`cuped_binary`] for
//!   0/1 metrics with ddof 0).
//! - [`sequential()`]`(estimate, se, n_total, alpha, tau, Alternative) ->
//!   Result<SequentialEstimate>`, [`DEFAULT_TAU`]; [`sequential_with_rho`]
//!   takes the mixture's ρ instead of τ (adjusted intervals keep the
//!   family's ρ).
//! - [`bayesian`]`(estimate, se, Option<NormalPrior>, alpha, inverse) ->
//!   Result<Bayes>` and [`get_risk`]`(mu, sigma) -> [f64; 2]`.
//! - [`compare()`]`(control, treatment, &CompareSettings) -> Result<Comparison>`:
//!   all of the above in one call.
//!
//! Every test here inverts its interval: p < alpha exactly when the interval
//! at alpha excludes 0 (one-sided: when its finite bound lies beyond 0), up
//! to rounding. The property tests check it for Welch, the relative lift and
//! both sequential forms, and for adjusted intervals against adjusted p.
//!
//! Experiment health and reporting:
//! - [`srm()`]`(observed, expected_weights) -> Srm` (GrowthBook TS semantics).
//! - [`holm`], [`benjamini_hochberg`] `(&[f64]) -> Result<Vec<f64>>`, [`adjusted_ci`],
//!   and [`adjusted_alpha`]`(alpha, p, p_adjusted) -> f64`: the level at which
//!   a test's own interval agrees with its adjusted p-value.
//! - [`achieved_power`], [`mde_at`], [`sample_size_per_arm`] with
//!   [`PowerSettings`] (fixed or sequential [`Design`]), [`frequentist_variance`],
//!   and [`mid_experiment_power`] / [`mid_experiment_power_from_se`] (gbstats'
//!   scaling factor).
//! - [`cochran_q`], [`disparate_impact`], [`disparate_impact_min`].
//!
//! Bandits and drift:
//! - [`prob_best`] over normal posteriors `(mean, sd)`, [`beta_prob_best`]
//!   over Beta `(alpha, beta)` posteriors (both deterministic quadrature),
//!   [`floor_weights`], [`normal_arm_posterior`], and the [`Hajek`]
//!   inverse-propensity accumulator.
//! - [`stratified_lift`], [`stratified_ratio_lift`] and [`stratified_means`] over allocation
//!   periods ([`Stratum`]): arm means, ratios and lifts valid when the weights change
//!   (batched-bandit inference).
//! - [`PageHinkley`] and [`Cusum`] detectors (`update(x) -> Option<DriftSignal>`,
//!   `Clone + serde` so their state can be persisted) and [`window_test`].
//!
//! Distribution helpers (normal, Student-t, chi-square) live in [`dist`].
//!
//! # Accuracy
//!
//! - [`Moments`] and [`CoMoments`] run Welford's recursion and Chan's merge on
//!   values shifted by the first observation, so 1e9 ± 1 keeps full relative
//!   precision in the variance.
//! - The normal functions use libm's erfc; the Student-t uses statrs'
//!   incomplete beta below 1,000 dof and a five-term large-dof expansion above,
//!   with Newton-polished quantiles. The fixture tests hold them, and the
//!   Welch, chi-square, power and correction results, to 1e-9 relative
//!   against scipy and statsmodels.
//! - [`prob_best`] and [`beta_prob_best`] use adaptive Gauss–Kronrod
//!   quadrature; they agree with scipy's `quad` to 1e-9 absolute.

pub mod adjust;
pub mod bandit;
pub mod bayes;
pub mod compare;
pub mod dist;
pub mod drift;
pub mod effect;
pub mod error;
pub mod frequentist;
pub mod heterogeneity;
pub mod moments;
pub mod multiple;
pub mod power;
mod quadrature;
pub mod sequential;
pub mod srm;
pub mod stratified;

pub use adjust::{cuped, cuped_binary, ratio_stats, Cuped};
pub use bandit::{
    beta_prob_best, floor_weights, normal_arm_posterior, prob_best, Hajek, HajekEstimate,
};
pub use bayes::{bayesian, get_risk, Bayes, NormalPrior};
pub use compare::{compare, CompareSettings, Comparison};
pub use drift::{
    window_test, Cusum, CusumParams, Direction, DriftSignal, PageHinkley, PageHinkleyParams,
    WindowTest,
};
pub use effect::{effect_sizes, EffectSizes};
pub use error::StatsError;
pub use frequentist::{relative_lift, t_test, welch_absolute, welch_dof, Alternative, Estimate};
pub use heterogeneity::{
    cochran_q, disparate_impact, disparate_impact_min, CochranQ, DisparateImpact,
};
pub use moments::{CoMoments, Moments, SampleStats};
pub use multiple::{adjusted_alpha, adjusted_ci, benjamini_hochberg, holm};
pub use power::{
    achieved_power, frequentist_variance, mde_at, mid_experiment_power,
    mid_experiment_power_from_se, sample_size_per_arm, Baseline, Design, MidExperimentPower,
    MidExperimentSettings, PowerSettings,
};
pub use sequential::{
    sequential, sequential_with_rho, SequentialEstimate, DEFAULT_TAU, ONE_SIDED_MAX_P,
    ONE_SIDED_MIN_P,
};
pub use srm::{srm, Srm, SRM_THRESHOLD};
pub use stratified::{
    merge_short, stratified_lift, stratified_means, stratified_ratio_lift, stratified_ratio_means,
    Accumulator, StratifiedLift, StratifiedMeans, Stratum,
};
