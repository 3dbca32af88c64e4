//! Bandit helpers: probability of being best by deterministic quadrature (normal and Beta posteriors), the additive weight floor, and Hájek inverse-propensity means.

use serde::{Deserialize, Serialize};

use statrs::function::beta::{beta_reg, ln_beta};

use crate::bayes::NormalPrior;
use crate::dist::norm_cdf;
use crate::error::{finite, positive, StatsError};
use crate::moments::{count_f64, len_f64, SampleStats};
use crate::quadrature::integrate;

/// The quadrature's target for the summed error bound (QUADPACK's
/// estimate, which is conservative for these smooth integrands).
const QUAD_TOLERANCE: f64 = 1e-9;
/// The most panels the adaptive quadrature may use.
const MAX_PANELS: usize = 400;
/// How many posterior sds around each arm the integration range covers
/// (the normal tail beyond 9 sd is 1e-19).
const SPAN: f64 = 9.0;
/// Initial panel boundaries around each arm, in posterior sds: the core of
/// every density gets panels of its own, however narrow it is next to the
/// others, and the adaptive splitting refines from there.
const CORE: [f64; 2] = [-2.5, 2.5];
/// The same for Beta posteriors, with the tails as well (their range is [0, 1]).
const OFFSETS: [f64; 4] = [-SPAN, -2.5, 2.5, SPAN];

/// Normalizes quadrature output into probabilities: clamps tiny negative
/// rounding to 0 and rescales to sum 1 (the raw sum is 1 within the
/// quadrature error).
fn normalize(mut p: Vec<f64>) -> Vec<f64> {
    for v in p.iter_mut() {
        *v = v.max(0.0);
    }
    let total: f64 = p.iter().sum();
    if total > 0.0 {
        for v in p.iter_mut() {
            *v /= total;
        }
    }
    p
}

/// Sorts and deduplicates panel boundaries.
fn sorted(mut points: Vec<f64>) -> Vec<f64> {
    points.sort_by(f64::total_cmp);
    points.dedup();
    points
}

/// P(arm i has the largest value) for independent normal posteriors given
/// as (mean, sd), by adaptive Gauss–Kronrod quadrature of
/// ∫ φ_i(x) ∏_{j≠i} Φ_j(x) dx over all arms at once (absolute error below
/// 1e-9 against scipy in the fixture tests). The result sums to 1.
///
/// Needs at least one arm, finite means and positive finite sds.
pub fn prob_best(arms: &[(f64, f64)]) -> Result<Vec<f64>, StatsError> {
    if arms.is_empty() {
        return Err(StatsError::TooFewEntries {
            what: "prob_best",
            needed: 1,
            got: 0,
        });
    }
    for &(mean, sd) in arms {
        finite("arm mean", mean)?;
        positive("arm sd", sd)?;
    }
    if arms.len() == 1 {
        return Ok(vec![1.0]);
    }
    let k = arms.len();
    // Below max_j(μ_j − 9σ_j) some arm's CDF is under Φ(−9) ≈ 1e-19, which
    // caps every other arm's integrand, and that arm's own density is in its
    // far tail; above max_j(μ_j + 9σ_j) every density is. So the integral
    // lives on [lo, hi].
    let lo = arms
        .iter()
        .map(|&(m, s)| m - SPAN * s)
        .fold(f64::NEG_INFINITY, f64::max);
    let hi = arms
        .iter()
        .map(|&(m, s)| m + SPAN * s)
        .fold(f64::NEG_INFINITY, f64::max);
    let points = sorted(
        arms.iter()
            .flat_map(|&(m, s)| CORE.iter().map(move |&t| m + t * s))
            .filter(|&x| lo < x && x < hi)
            .chain([lo, hi])
            .collect(),
    );
    let inv_sqrt_2pi = 1.0 / (2.0 * std::f64::consts::PI).sqrt();
    let mut cdf = vec![0.0; k];
    let mut pdf = vec![0.0; k];
    let raw = integrate(&points, k, QUAD_TOLERANCE, MAX_PANELS, |x, out| {
        for (j, &(m, s)) in arms.iter().enumerate() {
            let z = (x - m) / s;
            // Beyond 9 sds Φ is within 1e-19 of 0 or 1 and φ below 1e-18,
            // far under the quadrature's tolerance, so skip the special functions.
            (cdf[j], pdf[j]) = if z.abs() <= SPAN {
                (norm_cdf(z), (-0.5 * z * z).exp() * inv_sqrt_2pi / s)
            } else if z > 0.0 {
                (1.0, 0.0)
            } else {
                (0.0, 0.0)
            };
        }
        products_of_others(&cdf, &pdf, out);
    });
    Ok(normalize(raw))
}

/// Writes out[i] = pdf[i]·∏_{j≠i} cdf[j] using prefix and suffix products
/// (no division, so a zero CDF is harmless).
fn products_of_others(cdf: &[f64], pdf: &[f64], out: &mut [f64]) {
    let mut prefix = 1.0;
    for (i, o) in out.iter_mut().enumerate() {
        *o = prefix;
        prefix *= cdf[i];
    }
    let mut suffix = 1.0;
    for i in (0..out.len()).rev() {
        out[i] *= suffix * pdf[i];
        suffix *= cdf[i];
    }
}

/// P(arm i has the largest rate) for independent Beta(alpha, beta)
/// posteriors of Bernoulli rewards, by adaptive Gauss–Kronrod quadrature of
/// ∫ f_i(x) ∏_{j≠i} I_x(α_j, β_j) dx on [0, 1] (statrs' regularized
/// incomplete beta). Accurate to about 1e-9 for α, β ≥ 1 (the usual
/// Beta(1, 1) prior plus counts); a parameter below 1 puts an integrable
/// singularity at an end point, where accuracy drops to about 1e-6.
///
/// Needs at least one arm with finite α, β > 0.
pub fn beta_prob_best(arms: &[(f64, f64)]) -> Result<Vec<f64>, StatsError> {
    if arms.is_empty() {
        return Err(StatsError::TooFewEntries {
            what: "beta_prob_best",
            needed: 1,
            got: 0,
        });
    }
    for &(a, b) in arms {
        positive("beta alpha", a)?;
        positive("beta beta", b)?;
    }
    if arms.len() == 1 {
        return Ok(vec![1.0]);
    }
    let k = arms.len();
    let mut points = vec![0.0, 1.0];
    for &(a, b) in arms {
        let mean = a / (a + b);
        let sd = (a * b / ((a + b) * (a + b) * (a + b + 1.0))).sqrt();
        points.extend(OFFSETS.iter().map(|&t| (mean + t * sd).clamp(0.0, 1.0)));
    }
    let points = sorted(points);
    let ln_norm: Vec<f64> = arms.iter().map(|&(a, b)| ln_beta(a, b)).collect();
    let mut cdf = vec![0.0; k];
    let mut pdf = vec![0.0; k];
    let raw = integrate(&points, k, QUAD_TOLERANCE, MAX_PANELS, |x, out| {
        let (lx, l1x) = (x.ln(), (-x).ln_1p());
        for (j, &(a, b)) in arms.iter().enumerate() {
            cdf[j] = beta_reg(a, b, x);
            pdf[j] = ((a - 1.0) * lx + (b - 1.0) * l1x - ln_norm[j]).exp();
        }
        products_of_others(&cdf, &pdf, out);
    });
    Ok(normalize(raw))
}

/// The additive floor p_i = f + (1 − K·f)·w_i of gbstats (the weights are
/// normalized first). Gives uniform 1/K when K·f ≥ 1, or when the weights
/// are not all finite and non-negative with a positive sum; a negative (or
/// NaN) f counts as 0. An empty slice gives an empty vector.
pub fn floor_weights(weights: &[f64], floor: f64) -> Vec<f64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let k = len_f64(weights.len());
    let uniform = vec![1.0 / k; weights.len()];
    let f = if floor > 0.0 { floor } else { 0.0 };
    if k * f >= 1.0 {
        return uniform;
    }
    let total: f64 = weights.iter().sum();
    let valid = weights.iter().all(|w| w.is_finite() && *w >= 0.0);
    if !(valid && total > 0.0 && total.is_finite()) {
        return uniform;
    }
    weights
        .iter()
        .map(|w| f + (1.0 - k * f) * w / total)
        .collect()
}

/// The normal posterior (mean, sd) of an arm's mean under a proper normal
/// prior N(μ0, σ0²), as gbstats' bandits compute it (production prior
/// N(0, 1e4)): precision 1/σ0² + n/var, mean precision-weighted.
///
/// An arm with n < 2 has no variance estimate and keeps its prior; an arm
/// with n ≥ 2 and zero variance is an error, since its posterior would be a
/// point mass.
pub fn normal_arm_posterior(
    arm: &SampleStats,
    prior: NormalPrior,
) -> Result<(f64, f64), StatsError> {
    finite("prior mean", prior.mean)?;
    positive("prior variance", prior.variance)?;
    arm.check("bandit arm", 0.0)?;
    if arm.n < 2.0 {
        return Ok((prior.mean, prior.variance.sqrt()));
    }
    if arm.variance == 0.0 {
        return Err(StatsError::ZeroVariance("bandit arm"));
    }
    let data_precision = arm.n / arm.variance;
    let precision = data_precision + 1.0 / prior.variance;
    let mean = (arm.mean * data_precision + prior.mean / prior.variance) / precision;
    Ok((mean, precision.recip().sqrt()))
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
        let w = Self::weight(y, propensity)?;
        self.n += 1;
        self.add(w, y, 1.0);
        Ok(())
    }

    /// Removes a unit pushed before (the inverse of `push` up to rounding;
    /// removing the last unit restores the empty accumulator exactly).
    pub fn remove(&mut self, y: f64, propensity: f64) -> Result<(), StatsError> {
        let w = Self::weight(y, propensity)?;
        match self.n {
            0 => Err(StatsError::RemoveFromEmpty),
            1 => {
                *self = Self::default();
                Ok(())
            }
            n => {
                self.n = n - 1;
                self.add(w, y, -1.0);
                Ok(())
            }
        }
    }

    /// Merges another accumulator into this one.
    pub fn merge(&mut self, other: &Hajek) {
        self.n += other.n;
        self.sum_w += other.sum_w;
        self.sum_wy += other.sum_wy;
        self.sum_w2 += other.sum_w2;
        self.sum_w2y += other.sum_w2y;
        self.sum_w2y2 += other.sum_w2y2;
    }

    /// The number of units.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The estimate; needs at least 2 units.
    ///
    /// The variance is the linearization Σw²(y − μ̂)²/(Σw)², times n/(n−1)
    /// so that equal weights give the usual s²/n.
    pub fn estimate(&self) -> Result<HajekEstimate, StatsError> {
        if self.n < 2 {
            return Err(StatsError::TooFewObservations {
                what: "Hájek estimate",
                needed: 2.0,
                got: count_f64(self.n),
            });
        }
        let mean = self.sum_wy / self.sum_w;
        let spread = self.sum_w2y2 - 2.0 * mean * self.sum_w2y + mean * mean * self.sum_w2;
        let n = count_f64(self.n);
        let variance = spread.max(0.0) / (self.sum_w * self.sum_w) * n / (n - 1.0);
        Ok(HajekEstimate {
            mean,
            se: variance.sqrt(),
            effective_n: self.sum_w * self.sum_w / self.sum_w2,
        })
    }

    fn weight(y: f64, propensity: f64) -> Result<f64, StatsError> {
        finite("outcome", y)?;
        if !(0.0 < propensity && propensity <= 1.0) {
            return Err(StatsError::InvalidParameter {
                name: "propensity",
                value: propensity,
                expected: "in (0, 1]",
            });
        }
        Ok(propensity.recip())
    }

    fn add(&mut self, w: f64, y: f64, sign: f64) {
        let w2 = w * w;
        self.sum_w += sign * w;
        self.sum_wy += sign * w * y;
        self.sum_w2 += sign * w2;
        self.sum_w2y += sign * w2 * y;
        self.sum_w2y2 += sign * w2 * y * y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moments::Moments;

    #[test]
    fn symmetric_arms_share_the_probability() {
        let p = beta_prob_best(&[(3.0, 5.0), (3.0, 5.0), (3.0, 5.0)]).unwrap();
        assert!(p.iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-10), "{p:?}");
        let q = prob_best(&[(1.0, 2.0), (1.0, 2.0)]).unwrap();
        assert!((q[0] - 0.5).abs() < 1e-12);
        assert_eq!(prob_best(&[(0.3, 0.1)]).unwrap(), vec![1.0]);
        assert!(prob_best(&[]).is_err());
        assert!(prob_best(&[(0.0, 0.0), (1.0, 1.0)]).is_err());
        assert!(beta_prob_best(&[(0.0, 1.0), (1.0, 1.0)]).is_err());
    }

    #[test]
    fn two_normal_arms_have_a_closed_form() {
        // P(X1 > X2) = Φ((μ1 − μ2)/√(σ1² + σ2²)).
        let p = prob_best(&[(0.3, 0.2), (0.1, 0.05)]).unwrap();
        let want = crate::dist::norm_cdf(0.2 / (0.04_f64 + 0.0025).sqrt());
        assert!((p[0] - want).abs() < 1e-10, "{} vs {want}", p[0]);
    }

    #[test]
    fn two_uniform_beta_arms_against_a_known_value() {
        // P(Beta(2,1) > Beta(1,1)) = ∫ 2x·x dx = 2/3.
        let p = beta_prob_best(&[(2.0, 1.0), (1.0, 1.0)]).unwrap();
        assert!((p[0] - 2.0 / 3.0).abs() < 1e-10, "{p:?}");
    }

    #[test]
    fn floor_weights_fall_back_to_uniform() {
        assert_eq!(floor_weights(&[f64::NAN, 1.0], 0.1), vec![0.5, 0.5]);
        assert_eq!(floor_weights(&[0.0, 0.0], 0.1), vec![0.5, 0.5]);
        assert!(floor_weights(&[], 0.1).is_empty());
        let w = floor_weights(&[3.0, 1.0], f64::NAN);
        assert_eq!(w, vec![0.75, 0.25]);
    }

    #[test]
    fn an_arm_without_data_keeps_its_prior() {
        let prior = NormalPrior {
            mean: 0.0,
            variance: 1e4,
        };
        assert_eq!(
            normal_arm_posterior(&SampleStats::new(1.0, 5.0, 0.0), prior).unwrap(),
            (0.0, 100.0)
        );
        assert!(normal_arm_posterior(&SampleStats::new(5.0, 5.0, 0.0), prior).is_err());
    }

    #[test]
    fn hajek_with_equal_propensities_is_the_sample_mean() {
        let ys = [1.0, 4.0, 2.0, 9.0, 3.0];
        let mut h = Hajek::new();
        let mut m = Moments::new();
        for &y in &ys {
            h.push(y, 0.25).unwrap();
            m.push(y);
        }
        let e = h.estimate().unwrap();
        assert!((e.mean - m.mean()).abs() < 1e-12);
        assert!((e.se - (m.variance() / 5.0).sqrt()).abs() < 1e-12);
        assert!((e.effective_n - 5.0).abs() < 1e-12);
        h.remove(9.0, 0.25).unwrap();
        assert!((h.estimate().unwrap().mean - 2.5).abs() < 1e-12);
        assert!(h.push(1.0, 0.0).is_err());
    }

    #[test]
    fn hajek_reweights_by_inverse_propensity() {
        // A unit served with propensity 0.5 counts twice as much as one served with 1.
        let mut h = Hajek::new();
        h.push(10.0, 0.5).unwrap();
        h.push(1.0, 1.0).unwrap();
        let mut other = Hajek::new();
        other.push(1.0, 1.0).unwrap();
        h.merge(&other);
        let e = h.estimate().unwrap();
        assert!((e.mean - (20.0 + 1.0 + 1.0) / 4.0).abs() < 1e-12);
        assert_eq!(h.n(), 3);
    }
}
