//! Streaming sufficient statistics: univariate `Moments`, bivariate `CoMoments`, and the plain `SampleStats` input.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;

/// Converts a count to `f64`.
///
/// Counts in liftlab stay far below 2^53, where this conversion is exact.
#[inline]
pub(crate) fn count_f64(n: u64) -> f64 {
    // Exact for every n < 2^53 (about 9e15), far beyond any unit count.
    n as f64
}

/// Converts a length to `f64`.
///
/// Slices of arms, segments or p-values are far shorter than 2^53, where
/// this conversion is exact.
#[inline]
pub(crate) fn len_f64(k: usize) -> f64 {
    // Exact for every length below 2^53.
    k as f64
}

/// A streaming univariate accumulator: count, mean and the sum of squared
/// deviations (M2), updated by Welford's method and merged by Chan et al.'s
/// formula.
///
/// The recursion runs on x − shift, where the shift is the first value
/// pushed: for large values with a small spread (1e9 ± 1) the shifted values
/// are exact and small, so the variance keeps full relative precision.
/// Equality compares the representation (including the shift), not just
/// the statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    n: u64,
    /// The origin of the recursion; 0 in records written before it existed.
    #[serde(default)]
    shift: f64,
    /// The mean of x − shift.
    mean: f64,
    m2: f64,
}

impl Moments {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds an accumulator from raw sums (n, Σx, Σx²), as SQL or gbstats
    /// deliver them.
    ///
    /// The subtraction Σx² − (Σx)²/n loses precision when the mean is large
    /// compared with the spread; prefer `push` when the values are at hand.
    /// The sums are taken as given (M2 may come out slightly negative from
    /// rounding; `variance` reports it as 0), and n = 0 gives the empty
    /// accumulator.
    pub fn from_sums(n: u64, sum: f64, sum_sq: f64) -> Self {
        if n == 0 {
            return Self::default();
        }
        let mean = sum / count_f64(n);
        let m2 = sum_sq - sum * mean;
        Self {
            n,
            shift: 0.0,
            mean,
            m2,
        }
    }

    /// Adds one observation.
    pub fn push(&mut self, x: f64) {
        if self.n == 0 {
            self.shift = x;
        }
        let x = x - self.shift;
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / count_f64(self.n);
        self.m2 += delta * (x - self.mean);
    }

    /// Removes one observation that was pushed before: the inverse of `push`
    /// (up to rounding), used when a unit's aggregated value is replaced.
    ///
    /// Removing the last observation restores the empty accumulator exactly.
    pub fn remove(&mut self, x: f64) -> Result<(), StatsError> {
        match self.n {
            0 => Err(StatsError::RemoveFromEmpty),
            1 => {
                *self = Self::default();
                Ok(())
            }
            n => {
                let x = x - self.shift;
                let rest = count_f64(n - 1);
                let old_mean = self.mean;
                let new_mean = old_mean + (old_mean - x) / rest;
                self.m2 = (self.m2 - (x - new_mean) * (x - old_mean)).max(0.0);
                self.mean = new_mean;
                self.n = n - 1;
                Ok(())
            }
        }
    }

    /// Merges another accumulator into this one (Chan et al.); the result
    /// does not depend on the order of merges beyond rounding.
    pub fn merge(&mut self, other: &Moments) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        let n = self.n + other.n;
        let (na, nb, nf) = (count_f64(self.n), count_f64(other.n), count_f64(n));
        let other_mean = (other.shift - self.shift) + other.mean;
        let delta = other_mean - self.mean;
        self.mean += delta * (nb / nf);
        self.m2 += other.m2 + delta * delta * (na * nb / nf);
        self.n = n;
    }

    /// The number of observations.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The mean; 0 when empty.
    pub fn mean(&self) -> f64 {
        self.shift + self.mean
    }

    /// The sum of squared deviations from the mean (M2).
    pub fn m2(&self) -> f64 {
        self.m2
    }

    /// The sample variance M2/(n−1); 0 when n < 2 (and never negative).
    pub fn variance(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2 / count_f64(self.n - 1)).max(0.0)
        }
    }

    /// The population variance M2/n (ddof 0); 0 when empty (and never negative).
    pub fn population_variance(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            (self.m2 / count_f64(self.n)).max(0.0)
        }
    }

    /// The sample standard deviation; 0 when n < 2.
    pub fn sd(&self) -> f64 {
        self.variance().sqrt()
    }

    /// The sum of the observations, n·mean.
    pub fn sum(&self) -> f64 {
        count_f64(self.n) * self.mean()
    }

    /// The sum of squares Σx², recovered as M2 + n·mean².
    pub fn sum_sq(&self) -> f64 {
        let mean = self.mean();
        self.m2 + count_f64(self.n) * mean * mean
    }
}

/// A streaming bivariate accumulator over (x, y) pairs: count, both means,
/// both M2 and the co-moment Cxy = Σ(x−x̄)(y−ȳ).
///
/// Ratio metrics use x = numerator and y = denominator; CUPED uses
/// x = the metric in the experiment and y = the pre-experiment covariate.
/// Like [`Moments`], the recursion runs on values shifted by the first pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CoMoments {
    n: u64,
    /// The origin of x; 0 in records written before it existed.
    #[serde(default)]
    shift_x: f64,
    /// The origin of y; 0 in records written before it existed.
    #[serde(default)]
    shift_y: f64,
    /// The mean of x − shift_x.
    mean_x: f64,
    /// The mean of y − shift_y.
    mean_y: f64,
    m2_x: f64,
    m2_y: f64,
    c_xy: f64,
}

impl CoMoments {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds an accumulator from raw sums: n, Σx, Σy, Σx², Σy², Σxy.
    ///
    /// The sums are taken as given, so inconsistent sums (Σy² < (Σy)²/n)
    /// give a negative M2; the variance getters report such a value as 0,
    /// while `ratio_stats` uses it as gbstats does. n = 0 gives the empty
    /// accumulator.
    pub fn from_sums(
        n: u64,
        sum_x: f64,
        sum_y: f64,
        sum_xx: f64,
        sum_yy: f64,
        sum_xy: f64,
    ) -> Self {
        if n == 0 {
            return Self::default();
        }
        let nf = count_f64(n);
        let (mean_x, mean_y) = (sum_x / nf, sum_y / nf);
        Self {
            n,
            shift_x: 0.0,
            shift_y: 0.0,
            mean_x,
            mean_y,
            m2_x: sum_xx - sum_x * mean_x,
            m2_y: sum_yy - sum_y * mean_y,
            c_xy: sum_xy - sum_x * mean_y,
        }
    }

    /// Builds an accumulator from the moments of x and of y over the same
    /// pairs and their co-moment Cxy = Σ(x−x̄)(y−ȳ).
    ///
    /// Unlike `from_sums`, this keeps each part's shifted representation, so
    /// large values with a small spread lose no precision. `None` when the
    /// two counts differ (they cannot describe the same pairs).
    pub fn from_moments(x: &Moments, y: &Moments, c_xy: f64) -> Option<Self> {
        if x.n != y.n {
            return None;
        }
        if x.n == 0 {
            return Some(Self::default());
        }
        Some(Self {
            n: x.n,
            shift_x: x.shift,
            shift_y: y.shift,
            mean_x: x.mean,
            mean_y: y.mean,
            m2_x: x.m2,
            m2_y: y.m2,
            c_xy,
        })
    }

    /// Adds one (x, y) pair.
    pub fn push(&mut self, x: f64, y: f64) {
        if self.n == 0 {
            self.shift_x = x;
            self.shift_y = y;
        }
        let (x, y) = (x - self.shift_x, y - self.shift_y);
        self.n += 1;
        let nf = count_f64(self.n);
        let dx = x - self.mean_x;
        let dy = y - self.mean_y;
        self.mean_x += dx / nf;
        self.mean_y += dy / nf;
        self.m2_x += dx * (x - self.mean_x);
        self.m2_y += dy * (y - self.mean_y);
        self.c_xy += dx * (y - self.mean_y);
    }

    /// Removes one pair that was pushed before: the inverse of `push` (up to
    /// rounding). Removing the last pair restores the empty accumulator.
    pub fn remove(&mut self, x: f64, y: f64) -> Result<(), StatsError> {
        match self.n {
            0 => Err(StatsError::RemoveFromEmpty),
            1 => {
                *self = Self::default();
                Ok(())
            }
            n => {
                let (x, y) = (x - self.shift_x, y - self.shift_y);
                let rest = count_f64(n - 1);
                let new_x = self.mean_x + (self.mean_x - x) / rest;
                let new_y = self.mean_y + (self.mean_y - y) / rest;
                self.m2_x = (self.m2_x - (x - new_x) * (x - self.mean_x)).max(0.0);
                self.m2_y = (self.m2_y - (y - new_y) * (y - self.mean_y)).max(0.0);
                self.c_xy -= (x - new_x) * (y - self.mean_y);
                self.mean_x = new_x;
                self.mean_y = new_y;
                self.n = n - 1;
                Ok(())
            }
        }
    }

    /// Merges another accumulator into this one (Chan et al.).
    pub fn merge(&mut self, other: &CoMoments) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        let n = self.n + other.n;
        let (na, nb, nf) = (count_f64(self.n), count_f64(other.n), count_f64(n));
        let dx = (other.shift_x - self.shift_x) + other.mean_x - self.mean_x;
        let dy = (other.shift_y - self.shift_y) + other.mean_y - self.mean_y;
        let w = na * nb / nf;
        self.mean_x += dx * (nb / nf);
        self.mean_y += dy * (nb / nf);
        self.m2_x += other.m2_x + dx * dx * w;
        self.m2_y += other.m2_y + dy * dy * w;
        self.c_xy += other.c_xy + dx * dy * w;
        self.n = n;
    }

    /// The number of pairs.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The mean of x; 0 when empty.
    pub fn mean_x(&self) -> f64 {
        self.shift_x + self.mean_x
    }

    /// The mean of y; 0 when empty.
    pub fn mean_y(&self) -> f64 {
        self.shift_y + self.mean_y
    }

    /// The sample variance of x (n−1); 0 when n < 2 (and never negative).
    pub fn variance_x(&self) -> f64 {
        self.per_dof(self.m2_x).max(0.0)
    }

    /// The sample variance of y (n−1); 0 when n < 2 (and never negative).
    pub fn variance_y(&self) -> f64 {
        self.per_dof(self.m2_y).max(0.0)
    }

    /// M2 of x, as accumulated (negative only for inconsistent sums).
    pub fn m2_x(&self) -> f64 {
        self.m2_x
    }

    /// M2 of y, as accumulated (negative only for inconsistent sums).
    pub fn m2_y(&self) -> f64 {
        self.m2_y
    }

    /// The sample covariance of x and y (n−1); 0 when n < 2.
    pub fn covariance(&self) -> f64 {
        self.per_dof(self.c_xy)
    }

    /// The univariate moments of x.
    pub fn x(&self) -> Moments {
        Moments {
            n: self.n,
            shift: self.shift_x,
            mean: self.mean_x,
            m2: self.m2_x,
        }
    }

    /// The univariate moments of y.
    pub fn y(&self) -> Moments {
        Moments {
            n: self.n,
            shift: self.shift_y,
            mean: self.mean_y,
            m2: self.m2_y,
        }
    }

    /// The co-moment Σ(x−x̄)(y−ȳ).
    pub fn c_xy(&self) -> f64 {
        self.c_xy
    }

    /// A co-moment divided by n − `ddof`; 0 when n ≤ ddof.
    pub(crate) fn per(&self, m: f64, ddof: u64) -> f64 {
        if self.n <= ddof {
            0.0
        } else {
            m / count_f64(self.n - ddof)
        }
    }

    fn per_dof(&self, m: f64) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            m / count_f64(self.n - 1)
        }
    }
}

/// Plain per-arm summary statistics: the input of every comparison.
///
/// `variance` is the per-unit variance (sample variance with n−1 for means;
/// p(1−p) with ddof 0 for proportions, as gbstats does). `n` is an `f64` so
/// that weighted or fractional sizes can be expressed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleStats {
    /// The number of units.
    pub n: f64,
    /// The mean per unit.
    pub mean: f64,
    /// The per-unit variance.
    pub variance: f64,
}

impl SampleStats {
    /// Summary statistics from n, mean and per-unit variance.
    pub fn new(n: f64, mean: f64, variance: f64) -> Self {
        Self { n, mean, variance }
    }

    /// From raw sums (n, Σx, Σx²) with the sample variance (n−1), as
    /// gbstats' `SampleMeanStatistic`. n ≤ 1 gives variance 0.
    pub fn from_sums(n: f64, sum: f64, sum_sq: f64) -> Self {
        if n <= 0.0 {
            return Self::new(n, 0.0, 0.0);
        }
        let mean = sum / n;
        let variance = if n > 1.0 {
            ((sum_sq - sum * mean) / (n - 1.0)).max(0.0)
        } else {
            0.0
        };
        Self::new(n, mean, variance)
    }

    /// A binary metric: mean p = successes/n and variance p(1−p) (ddof 0,
    /// gbstats' `ProportionStatistic`). n ≤ 0 gives mean and variance 0.
    pub fn proportion(n: f64, successes: f64) -> Self {
        if n <= 0.0 {
            return Self::new(n, 0.0, 0.0);
        }
        let p = successes / n;
        Self::new(n, p, (p * (1.0 - p)).max(0.0))
    }

    /// The standard deviation per unit.
    pub fn sd(&self) -> f64 {
        self.variance.max(0.0).sqrt()
    }

    /// The squared standard error of the mean, variance/n.
    pub fn var_of_mean(&self) -> f64 {
        self.variance / self.n
    }

    /// Checks that n ≥ `min_n` and that every field is finite with a
    /// non-negative variance.
    pub(crate) fn check(&self, what: &'static str, min_n: f64) -> Result<(), StatsError> {
        crate::error::finite("n", self.n)?;
        crate::error::finite("mean", self.mean)?;
        crate::error::finite("variance", self.variance)?;
        if self.variance < 0.0 {
            return Err(StatsError::InvalidParameter {
                name: "variance",
                value: self.variance,
                expected: ">= 0",
            });
        }
        if self.n < min_n {
            return Err(StatsError::TooFewObservations {
                what,
                needed: min_n,
                got: self.n,
            });
        }
        Ok(())
    }
}

impl From<&Moments> for SampleStats {
    fn from(m: &Moments) -> Self {
        Self::new(count_f64(m.n()), m.mean(), m.variance())
    }
}

impl From<Moments> for SampleStats {
    fn from(m: Moments) -> Self {
        Self::from(&m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streaming moments of large values with a small spread must match a
    /// two-pass computation to this relative accuracy.
    const STABLE: f64 = 1e-9;

    /// Values near 1e9 with a spread of about 1, deterministic.
    fn large_values() -> Vec<f64> {
        (0..10_000_u32)
            .map(|i| 1e9 + f64::from((i * 7919) % 1000) / 500.0 - 1.0)
            .collect()
    }

    fn two_pass(values: &[f64]) -> (f64, f64) {
        let n = len_f64(values.len());
        let mean = values.iter().sum::<f64>() / n;
        let (sq, lin) = values.iter().fold((0.0, 0.0), |(sq, lin), x| {
            let d = x - mean;
            (sq + d * d, lin + d)
        });
        // The compensated two-pass formula removes the residual of the mean.
        (mean, (sq - lin * lin / n) / (n - 1.0))
    }

    #[test]
    fn large_values_with_small_spread_match_two_pass() {
        let values = large_values();
        let (mean, variance) = two_pass(&values);
        let mut m = Moments::new();
        values.iter().for_each(|&x| m.push(x));
        assert!(((m.mean() - mean) / mean).abs() < 1e-13);
        assert!(
            ((m.variance() - variance) / variance).abs() < STABLE,
            "{} vs {variance}",
            m.variance()
        );

        let mut merged = Moments::new();
        for chunk in values.chunks(997).rev() {
            let mut part = Moments::new();
            chunk.iter().for_each(|&x| part.push(x));
            merged.merge(&part);
        }
        assert!(((merged.variance() - variance) / variance).abs() < STABLE);

        let mut co = CoMoments::new();
        values
            .iter()
            .zip(values.iter().rev())
            .for_each(|(&x, &y)| co.push(x, y));
        assert!(((co.variance_x() - variance) / variance).abs() < STABLE);
        let cov_two_pass = values
            .iter()
            .zip(values.iter().rev())
            .map(|(x, y)| (x - mean) * (y - mean))
            .sum::<f64>()
            / (len_f64(values.len()) - 1.0);
        assert!((co.covariance() - cov_two_pass).abs() < STABLE * variance);
    }

    #[test]
    fn co_moments_from_their_parts_match_pushed_pairs() {
        let xs = large_values();
        let pairs: Vec<(f64, f64)> = xs
            .iter()
            .zip(xs.iter().rev())
            .map(|(&x, &y)| (x, 0.5 * y - 3.0))
            .collect();
        let mut pushed = CoMoments::new();
        let (mut x, mut y) = (Moments::new(), Moments::new());
        for &(a, b) in &pairs {
            pushed.push(a, b);
            x.push(a);
            y.push(b);
        }
        let built = CoMoments::from_moments(&x, &y, pushed.c_xy()).expect("same n");
        assert_eq!(built.n(), pushed.n());
        let near = |a: f64, b: f64| (a - b).abs() <= STABLE * a.abs().max(b.abs());
        assert!(near(built.mean_x(), pushed.mean_x()));
        assert!(near(built.mean_y(), pushed.mean_y()));
        assert!(near(built.variance_x(), pushed.variance_x()));
        assert!(near(built.variance_y(), pushed.variance_y()));
        assert_eq!(built.covariance(), pushed.covariance());

        y.push(1.0);
        assert_eq!(CoMoments::from_moments(&x, &y, 0.0), None);
        assert_eq!(
            CoMoments::from_moments(&Moments::new(), &Moments::new(), 0.0),
            Some(CoMoments::default())
        );
    }

    #[test]
    fn removing_every_value_restores_the_empty_accumulator() {
        let mut m = Moments::new();
        let mut c = CoMoments::new();
        for x in [3.0, 1.5, -2.0] {
            m.push(x);
            c.push(x, x * x);
        }
        for x in [1.5, -2.0, 3.0] {
            m.remove(x).unwrap();
            c.remove(x, x * x).unwrap();
        }
        assert_eq!(m, Moments::default());
        assert_eq!(c, CoMoments::default());
        assert_eq!(m.remove(1.0), Err(StatsError::RemoveFromEmpty));
        assert_eq!(c.remove(1.0, 2.0), Err(StatsError::RemoveFromEmpty));
    }

    #[test]
    fn sums_and_moments_agree() {
        let m = Moments::from_sums(4, 10.0, 30.0);
        assert_eq!(m.mean(), 2.5);
        assert!((m.variance() - 5.0 / 3.0).abs() < 1e-15);
        assert!((m.sum() - 10.0).abs() < 1e-15);
        assert!((m.sum_sq() - 30.0).abs() < 1e-12);
        assert_eq!(Moments::from_sums(0, 3.0, 9.0), Moments::default());
        // Rounding can make M2 slightly negative; the variance reports 0.
        assert_eq!(Moments::from_sums(3, 3e9, 3e18 - 1.0).variance(), 0.0);
        let s = SampleStats::from(&m);
        assert_eq!((s.n, s.mean), (4.0, 2.5));
    }

    #[test]
    fn proportions_use_the_population_variance() {
        let p = SampleStats::proportion(30.0, 16.0);
        assert!((p.variance - (16.0 / 30.0) * (14.0 / 30.0)).abs() < 1e-15);
        assert_eq!(SampleStats::proportion(0.0, 0.0).variance, 0.0);
    }

    #[test]
    fn accumulators_survive_a_serde_round_trip() {
        let mut m = Moments::new();
        let mut c = CoMoments::new();
        for x in [0.1, 0.2, 0.7] {
            m.push(x);
            c.push(x, 1.0 - x);
        }
        let m2: Moments = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        let c2: CoMoments = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        // serde_json parses floats to within an ulp unless its float_roundtrip
        // feature is on, so compare to rounding rather than bit for bit.
        let near = |a: f64, b: f64| (a - b).abs() <= 4.0 * f64::EPSILON * a.abs().max(b.abs());
        assert_eq!(m.n(), m2.n());
        assert!(near(m.mean(), m2.mean()) && near(m.m2(), m2.m2()));
        assert_eq!(c.n(), c2.n());
        assert!(
            near(c.c_xy(), c2.c_xy()) && near(c.m2_x(), c2.m2_x()) && near(c.mean_y(), c2.mean_y())
        );
    }
}
