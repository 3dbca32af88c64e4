//! Estimates stratified by allocation period: valid arm means and lifts when the allocation weights change over time.
//!
//! Under adaptive allocation (a bandit, or fixed weights changed mid-run) the share of units
//! an arm gets moves with time, so pooled arm means mix different times in different
//! proportions: with a trend shared by all arms that is Simpson's paradox. Within one
//! allocation period the weights are fixed, so each period is an ordinary randomized
//! experiment; combining the periods' differences with fixed weights is batched-bandit
//! inference (Zhang, Janson & Murphy 2020).
//!
//! The estimand is "every unit on arm a, averaged over the run": period p is weighted by its
//! share of units over all arms, w_p = N_p / Σ N_q, and
//! - arm mean μ_a = Σ w_p ȳ_a,p with Var(μ_a) = Σ w_p² s²_a,p / n_a,p (arms and periods are
//!   independent samples);
//! - absolute effect Δ = μ_T − μ_B with Var(Δ) = Var(μ_T) + Var(μ_B);
//! - relative lift L = Δ/|μ_B| by the delta method, including Cov(Δ, μ_B) = −Var(μ_B):
//!   Var(L) = Var(Δ)/μ_B² + Δ²·Var(μ_B)/μ_B⁴ − 2Δ·Cov(Δ, μ_B)/μ_B³.
//!
//! **Merging short periods.** A period in which some compared arm has fewer than 2 units has
//! no variance for that arm, and one with a handful has a variance too noisy to trust, so
//! periods are merged: walking periods in order, each period is added to an open stratum,
//! which is closed as soon as every compared arm has at least `min_units` units in it (never
//! fewer than 2; liftlab's report asks for 10); a trailing stratum that never qualifies is
//! merged into the last closed one.
//! Within a merged stratum the arms' pooled means are compared as if its weights were one, so
//! the estimand stays exact only when the merged periods share their weights or the outcome
//! does not drift across them; merging touches only periods with almost no units of some arm,
//! which carry little weight.

use crate::{CoMoments, Moments, StatsError};

/// The fewest units an arm may have in a stratum: a sample variance needs two. Callers may
/// ask for more (`min_units`), so that each stratum's variance estimate is stable.
pub const MIN_UNITS_PER_STRATUM: u64 = 2;

/// One allocation period's data: its units over all arms (the weight) and each compared arm's
/// per-unit moments ([`Moments`], or [`CoMoments`] of (x, y) pairs for a ratio metric), in a
/// fixed arm order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stratum<M = Moments> {
    /// Units in the period over all arms of the experiment (not only the compared ones).
    pub units: u64,
    /// Per-unit moments of each compared arm in the period.
    pub arms: Vec<M>,
}

/// What periods are merged by: a mergeable per-arm summary with a count of units.
pub trait Accumulator: Clone + Default {
    /// Units summarised.
    fn units(&self) -> u64;
    /// Adds another summary of disjoint units.
    fn absorb(&mut self, other: &Self);
}

impl Accumulator for Moments {
    fn units(&self) -> u64 {
        self.n()
    }
    fn absorb(&mut self, other: &Self) {
        self.merge(other);
    }
}

impl Accumulator for CoMoments {
    fn units(&self) -> u64 {
        self.n()
    }
    fn absorb(&mut self, other: &Self) {
        self.merge(other);
    }
}

/// Per-arm means stratified by period, with their variances.
#[derive(Clone, Debug, PartialEq)]
pub struct StratifiedMeans {
    /// μ_a per arm, in the strata's arm order.
    pub means: Vec<f64>,
    /// Var(μ_a) per arm.
    pub variances: Vec<f64>,
    /// Strata used after merging short periods.
    pub strata: usize,
    /// Units of the compared arms together.
    pub n_total: u64,
}

/// A stratified comparison of a treatment with a baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StratifiedLift {
    /// μ_B, the stratified baseline mean.
    pub baseline_mean: f64,
    /// μ_T, the stratified treatment mean.
    pub treatment_mean: f64,
    /// Δ = μ_T − μ_B.
    pub absolute: f64,
    /// √Var(Δ).
    pub absolute_se: f64,
    /// L = Δ/|μ_B|.
    pub relative: f64,
    /// The delta-method standard error of L.
    pub relative_se: f64,
    /// Strata used after merging short periods.
    pub strata: usize,
    /// Units of both arms together.
    pub n_total: u64,
}

/// Merges short periods (see the module documentation); every stratum in the result has at
/// least `min_units` (never fewer than [`MIN_UNITS_PER_STRATUM`]) units of every arm. Empty
/// when no stratum qualifies.
pub fn merge_short<M: Accumulator>(periods: &[Stratum<M>], min_units: u64) -> Vec<Stratum<M>> {
    let min_units = min_units.max(MIN_UNITS_PER_STRATUM);
    let enough = |s: &Stratum<M>| s.arms.iter().all(|m| m.units() >= min_units);
    let mut out: Vec<Stratum<M>> = Vec::new();
    let mut open: Option<Stratum<M>> = None;
    for period in periods {
        let stratum = open.get_or_insert_with(|| Stratum {
            units: 0,
            arms: vec![M::default(); period.arms.len()],
        });
        stratum.units += period.units;
        for (acc, m) in stratum.arms.iter_mut().zip(&period.arms) {
            acc.absorb(m);
        }
        if enough(stratum) {
            out.extend(open.take());
        }
    }
    if let (Some(rest), Some(last)) = (open, out.last_mut()) {
        last.units += rest.units;
        for (acc, m) in last.arms.iter_mut().zip(&rest.arms) {
            acc.absorb(m);
        }
    }
    out
}

/// The strata of `periods` after merging, and their units in all; fails when the periods
/// disagree on their arms or no stratum qualifies.
fn merged<M: Accumulator>(
    periods: &[Stratum<M>],
    min_units: u64,
) -> Result<(Vec<Stratum<M>>, u64), StatsError> {
    let arms = periods.first().map_or(0, |p| p.arms.len());
    if periods.iter().any(|p| p.arms.len() != arms) {
        return Err(StatsError::InvalidParameter {
            name: "strata",
            value: f64::NAN,
            expected: "the same arms in every period",
        });
    }
    let strata = merge_short(periods, min_units);
    let total: u64 = strata.iter().map(|s| s.units).sum();
    if strata.is_empty() || total == 0 {
        return Err(StatsError::TooFewObservations {
            what: "a period-stratified estimate",
            needed: 2.0,
            got: 0.0,
        });
    }
    Ok((strata, total))
}

/// Each arm's mean stratified by period (short periods merged until every arm has
/// `min_units`), weighting period p by its share of units over all arms; fails when no stratum has 2 units of every arm, or no units at all.
pub fn stratified_means(
    periods: &[Stratum],
    min_units: u64,
) -> Result<StratifiedMeans, StatsError> {
    stratified_by(periods, min_units, |cells| {
        let mut mean = 0.0;
        let mut variance = 0.0;
        for &(w, m) in cells {
            mean += w * m.mean();
            variance += w * w * m.variance() / count(m.n());
        }
        Ok((mean, variance))
    })
}

/// The stratified comparison of `treatment` with `baseline`: each period's pair is
/// `(units over all arms, baseline moments, treatment moments)`; short periods are merged
/// until both arms have `min_units`.
pub fn stratified_lift(
    periods: &[(u64, Moments, Moments)],
    min_units: u64,
) -> Result<StratifiedLift, StatsError> {
    lift_of(&stratified_means(&pairs(periods), min_units)?)
}

/// The stratified comparison of a ratio metric Σx/Σy: each period's pair is `(units over all
/// arms, baseline (x, y) co-moments, treatment (x, y) co-moments)`; short periods are merged
/// until both arms have `min_units`.
///
/// Each arm's ratio is the combined ratio estimator R = μx/μy of the stratified means of x
/// and of y (the ratio "every unit on the arm" would give), with the delta-method variance
/// Var(R) = (Var(μx) − 2R·Cov(μx, μy) + R²·Var(μy))/μy², where Var(μx) = Σ w_p² s²x,p/n_p,
/// Var(μy) likewise and Cov(μx, μy) = Σ w_p² sxy,p/n_p. The lift then follows as for means.
pub fn stratified_ratio_lift(
    periods: &[(u64, CoMoments, CoMoments)],
    min_units: u64,
) -> Result<StratifiedLift, StatsError> {
    lift_of(&stratified_ratio_means(&pairs(periods), min_units)?)
}

/// Each arm's ratio Σx/Σy stratified by period: the combined ratio estimator with its
/// delta-method variance (see [`stratified_ratio_lift`]); `means` are the ratios.
pub fn stratified_ratio_means(
    periods: &[Stratum<CoMoments>],
    min_units: u64,
) -> Result<StratifiedMeans, StatsError> {
    stratified_by(periods, min_units, |cells| {
        let (mut mx, mut my, mut vxx, mut vyy, mut vxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(w, c) in cells {
            let n = count(c.n());
            mx += w * c.mean_x();
            my += w * c.mean_y();
            vxx += w * w * c.variance_x() / n;
            vyy += w * w * c.variance_y() / n;
            vxy += w * w * c.covariance() / n;
        }
        if my == 0.0 {
            return Err(StatsError::InvalidParameter {
                name: "denominator mean",
                value: my,
                expected: "non-zero",
            });
        }
        let r = mx / my;
        Ok((
            r,
            ((vxx - 2.0 * r * vxy + r * r * vyy) / (my * my)).max(0.0),
        ))
    })
}

/// Two compared arms' periods as strata: (units over all arms, baseline, treatment).
fn pairs<M: Copy>(periods: &[(u64, M, M)]) -> Vec<Stratum<M>> {
    periods
        .iter()
        .map(|(units, b, t)| Stratum {
            units: *units,
            arms: vec![*b, *t],
        })
        .collect()
}

/// Merges short periods, then gives each arm the (mean, variance) that `arm` computes from its
/// cells: (the stratum's weight w_p, the arm's summary in it), in period order.
fn stratified_by<M: Accumulator>(
    periods: &[Stratum<M>],
    min_units: u64,
    arm: impl Fn(&[(f64, &M)]) -> Result<(f64, f64), StatsError>,
) -> Result<StratifiedMeans, StatsError> {
    let (strata, total) = merged(periods, min_units)?;
    let arms = strata[0].arms.len();
    let mut means = Vec::with_capacity(arms);
    let mut variances = Vec::with_capacity(arms);
    for a in 0..arms {
        let cells: Vec<(f64, &M)> = strata
            .iter()
            .map(|s| (count(s.units) / count(total), &s.arms[a]))
            .collect();
        let (mean, variance) = arm(&cells)?;
        means.push(mean);
        variances.push(variance);
    }
    Ok(summary(&strata, means, variances))
}

/// The stratified means of merged `strata`, with the units of every arm counted.
fn summary<M: Accumulator>(
    strata: &[Stratum<M>],
    means: Vec<f64>,
    variances: Vec<f64>,
) -> StratifiedMeans {
    StratifiedMeans {
        means,
        variances,
        strata: strata.len(),
        n_total: strata
            .iter()
            .flat_map(|s| s.arms.iter().map(Accumulator::units))
            .sum(),
    }
}

/// The comparison of arm 1 (treatment) with arm 0 (baseline) of stratified means.
fn lift_of(m: &StratifiedMeans) -> Result<StratifiedLift, StatsError> {
    let (mu_b, mu_t) = (m.means[0], m.means[1]);
    let (var_b, var_t) = (m.variances[0], m.variances[1]);
    let delta = mu_t - mu_b;
    let var_delta = var_t + var_b;
    if var_delta <= 0.0 {
        return Err(StatsError::ZeroVariance("the stratified difference"));
    }
    if mu_b == 0.0 {
        return Err(StatsError::ZeroBaseline);
    }
    let cov = -var_b;
    let var_rel = var_delta / mu_b.powi(2) + delta.powi(2) * var_b / mu_b.powi(4)
        - 2.0 * delta * cov / mu_b.powi(3);
    Ok(StratifiedLift {
        baseline_mean: mu_b,
        treatment_mean: mu_t,
        absolute: delta,
        absolute_se: var_delta.sqrt(),
        relative: delta / mu_b.abs(),
        relative_se: var_rel.max(0.0).sqrt(),
        strata: m.strata,
        n_total: m.n_total,
    })
}

/// A count as `f64`; exact below 2^53.
fn count(n: u64) -> f64 {
    // Unit counts stay far below 2^53, where the conversion is exact.
    n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed results: agreement to rounding.
    const EXACT: f64 = 1e-12;

    fn moments(xs: &[f64]) -> Moments {
        let mut m = Moments::new();
        xs.iter().for_each(|&x| m.push(x));
        m
    }

    fn close(got: f64, want: f64, what: &str) {
        assert!(
            (got - want).abs() <= EXACT * want.abs().max(1.0),
            "{what}: {got} vs {want}"
        );
    }

    /// Two periods by hand. Period 0: B = {1, 3} (mean 2, s² 2), T = {4, 6} (mean 5, s² 2),
    /// 4 units. Period 1: B = {2, 4, 6} (mean 4, s² 4), T = {7, 9} (mean 8, s² 2), 12 units
    /// (other arms hold the rest). w = (1/4, 3/4).
    /// μ_B = 2/4 + 12/4 = 3.5, μ_T = 5/4 + 24/4 = 7.25, Δ = 3.75.
    /// Var(μ_B) = (1/16)(2/2) + (9/16)(4/3) = 1/16 + 12/16 = 13/16;
    /// Var(μ_T) = (1/16)(1) + (9/16)(1) = 10/16; Var(Δ) = 23/16.
    /// Var(L) = (23/16)/3.5² + 3.75²·(13/16)/3.5⁴ + 2·3.75·(13/16)/3.5³.
    #[test]
    fn matches_a_hand_computed_case() {
        let got = stratified_lift(
            &[
                (4, moments(&[1.0, 3.0]), moments(&[4.0, 6.0])),
                (12, moments(&[2.0, 4.0, 6.0]), moments(&[7.0, 9.0])),
            ],
            2,
        )
        .unwrap();
        close(got.baseline_mean, 3.5, "mu_b");
        close(got.treatment_mean, 7.25, "mu_t");
        close(got.absolute, 3.75, "delta");
        close(got.absolute_se, (23.0f64 / 16.0).sqrt(), "se(delta)");
        close(got.relative, 3.75 / 3.5, "lift");
        let var = (23.0 / 16.0) / 3.5f64.powi(2)
            + 3.75f64.powi(2) * (13.0 / 16.0) / 3.5f64.powi(4)
            + 2.0 * 3.75 * (13.0 / 16.0) / 3.5f64.powi(3);
        close(got.relative_se, var.sqrt(), "se(lift)");
        assert_eq!((got.strata, got.n_total), (2, 9));
    }

    /// The delta method on (Δ, μ_B) equals the one on (μ_T, μ_B): Var(L) = Var(μ_T)/μ_B² +
    /// μ_T²·Var(μ_B)/μ_B⁴.
    #[test]
    fn the_covariance_term_matches_the_ratio_form() {
        let got = stratified_lift(
            &[
                (10, moments(&[1.0, 2.0, 4.0]), moments(&[3.0, 5.0])),
                (
                    30,
                    moments(&[2.0, 2.5, 7.0, 1.0]),
                    moments(&[6.0, 9.0, 4.0]),
                ),
            ],
            2,
        )
        .unwrap();
        let (b, t) = (got.baseline_mean, got.treatment_mean);
        let var_b = {
            let m = stratified_means(
                &[
                    Stratum {
                        units: 10,
                        arms: vec![moments(&[1.0, 2.0, 4.0])],
                    },
                    Stratum {
                        units: 30,
                        arms: vec![moments(&[2.0, 2.5, 7.0, 1.0])],
                    },
                ],
                2,
            )
            .unwrap();
            m.variances[0]
        };
        let var_t = got.absolute_se.powi(2) - var_b;
        let want = (var_t / b.powi(2) + t.powi(2) * var_b / b.powi(4)).sqrt();
        close(got.relative_se, want, "se(lift)");
    }

    /// A period with one baseline unit is merged into the next; a short last period into the
    /// one before.
    #[test]
    fn short_periods_merge_with_a_neighbour() {
        let periods = [
            Stratum {
                units: 3,
                arms: vec![moments(&[1.0]), moments(&[2.0, 3.0])],
            },
            Stratum {
                units: 5,
                arms: vec![moments(&[2.0, 4.0]), moments(&[1.0, 5.0])],
            },
            Stratum {
                units: 4,
                arms: vec![moments(&[3.0, 5.0]), moments(&[2.0, 2.0])],
            },
            Stratum {
                units: 1,
                arms: vec![moments(&[7.0]), moments(&[])],
            },
        ];
        let merged = merge_short(&periods, 2);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].units, 8);
        assert_eq!(merged[0].arms[0].n(), 3);
        assert_eq!(merged[1].units, 5);
        assert_eq!(merged[1].arms[0].n(), 3);
        assert_eq!(merged[1].arms[1].n(), 2);
    }

    #[test]
    fn too_little_data_is_an_error() {
        let err = stratified_lift(&[(2, moments(&[1.0]), moments(&[2.0]))], 2).unwrap_err();
        assert!(
            matches!(err, StatsError::TooFewObservations { .. }),
            "{err}"
        );
        let err =
            stratified_lift(&[(4, moments(&[0.0, 0.0]), moments(&[1.0, 2.0]))], 2).unwrap_err();
        assert_eq!(err, StatsError::ZeroBaseline);
    }

    /// One period is the plain comparison: Δ and its Welch standard error.
    #[test]
    fn one_period_is_the_plain_comparison() {
        let (b, t) = (moments(&[1.0, 2.0, 4.0, 5.0]), moments(&[3.0, 4.0, 8.0]));
        let got = stratified_lift(&[(7, b, t)], 2).unwrap();
        close(got.absolute, t.mean() - b.mean(), "delta");
        let se = (b.variance() / 4.0 + t.variance() / 3.0).sqrt();
        close(got.absolute_se, se, "se");
    }

    fn pairs(xy: &[(f64, f64)]) -> CoMoments {
        let mut c = CoMoments::new();
        xy.iter().for_each(|&(x, y)| c.push(x, y));
        c
    }

    /// One period of a ratio metric is the pooled delta-method ratio of each arm
    /// (`ratio_stats`, whose per-unit variance over n is the ratio's variance).
    #[test]
    fn one_period_of_a_ratio_is_the_pooled_ratio() {
        let b = pairs(&[(10.0, 1.0), (25.0, 2.0), (33.0, 3.0), (8.0, 1.0)]);
        let t = pairs(&[(9.0, 1.0), (14.0, 2.0), (30.0, 4.0)]);
        let got = stratified_ratio_lift(&[(7, b, t)], 2).unwrap();
        let (rb, rt) = (
            crate::ratio_stats(&b).unwrap(),
            crate::ratio_stats(&t).unwrap(),
        );
        close(got.baseline_mean, 76.0 / 7.0, "R_B = Σx/Σy");
        close(got.treatment_mean, 53.0 / 7.0, "R_T");
        close(
            got.absolute_se,
            (rb.variance / 4.0 + rt.variance / 3.0).sqrt(),
            "se",
        );
    }

    /// Two periods by hand, each arm's y all 1 in period 0 and all 2 in period 1, so each
    /// period's ratio is exact and Var(μy) = 0: R = μx/μy with w = (1/2, 1/2).
    /// B: period 0 x = {2, 4} (mean 3, s² 2), period 1 x = {6, 10} (mean 8, s² 8):
    /// μx = 5.5, μy = 1.5, R_B = 11/3, Var(R_B) = Var(μx)/μy² = (1/4)(2/2 + 8/2)/2.25 = 5/9.
    /// T: period 0 x = {1, 3}, period 1 x = {4, 8}: μx = 4, μy = 1.5, R_T = 8/3,
    /// Var(R_T) = (1/4)(2/2 + 8/2)/2.25 = 5/9.
    #[test]
    fn a_ratio_matches_a_hand_computed_case() {
        let got = stratified_ratio_lift(
            &[
                (
                    4,
                    pairs(&[(2.0, 1.0), (4.0, 1.0)]),
                    pairs(&[(1.0, 1.0), (3.0, 1.0)]),
                ),
                (
                    4,
                    pairs(&[(6.0, 2.0), (10.0, 2.0)]),
                    pairs(&[(4.0, 2.0), (8.0, 2.0)]),
                ),
            ],
            2,
        )
        .unwrap();
        close(got.baseline_mean, 11.0 / 3.0, "R_B");
        close(got.treatment_mean, 8.0 / 3.0, "R_T");
        close(got.absolute, -1.0, "delta");
        close(got.absolute_se, (10.0f64 / 9.0).sqrt(), "se(delta)");
        assert_eq!(got.strata, 2);
    }
}
