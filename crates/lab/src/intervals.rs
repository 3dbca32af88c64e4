//! Exact intervals for calibration figures: Clopper–Pearson for a measured rate, the central acceptance range of a target rate, and Garwood's interval for a Poisson count.

use statrs::distribution::{Beta, Binomial, ContinuousCDF, DiscreteCDF, Gamma};

/// The exact (Clopper–Pearson) two-sided interval of a rate after `successes` in `trials`,
/// at confidence `level` (e.g. 0.95). Returns (0, 1) for zero trials.
pub fn clopper_pearson(successes: u64, trials: u64, level: f64) -> (f64, f64) {
    if trials == 0 || successes > trials {
        return (0.0, 1.0);
    }
    let tail = (1.0 - level) / 2.0;
    let k = count(successes);
    let n = count(trials);
    let low = if successes == 0 {
        0.0
    } else {
        Beta::new(k, n - k + 1.0).map_or(0.0, |b| b.inverse_cdf(tail))
    };
    let high = if successes == trials {
        1.0
    } else {
        Beta::new(k + 1.0, n - k).map_or(1.0, |b| b.inverse_cdf(1.0 - tail))
    };
    (low, high)
}

/// The central range [lo, hi] of success counts that Binomial(`trials`, `p`) falls in with
/// probability at least `level`: lo is the (1−level)/2 quantile and hi the (1+level)/2 quantile
/// (scipy's `binom.ppf`). A measured count inside it is consistent with the rate `p`.
pub fn acceptance_range(trials: u64, p: f64, level: f64) -> (u64, u64) {
    let Ok(dist) = Binomial::new(p, trials) else {
        return (0, trials);
    };
    let tail = (1.0 - level) / 2.0;
    let quantile = |q: f64| (0..=trials).find(|&k| dist.cdf(k) >= q).unwrap_or(trials);
    (quantile(tail), quantile(1.0 - tail))
}

/// The exact (Garwood) two-sided interval of the mean of a Poisson count `k`, at confidence
/// `level`: the (1−level)/2 quantile of Gamma(k, 1) and the (1+level)/2 quantile of
/// Gamma(k + 1, 1) (equivalently χ²(2k)/2 and χ²(2k + 2)/2).
pub fn poisson_interval(k: u64, level: f64) -> (f64, f64) {
    let tail = (1.0 - level) / 2.0;
    let kf = count(k);
    let low = if k == 0 {
        0.0
    } else {
        gamma_quantile(kf, tail)
    };
    (low, gamma_quantile(kf + 1.0, 1.0 - tail))
}

/// The `p` quantile of Gamma(shape, 1) by bisection on statrs' CDF (the regularized incomplete
/// gamma function), to full double precision; statrs' own inverse stops after a few steps.
fn gamma_quantile(shape: f64, p: f64) -> f64 {
    let Ok(dist) = Gamma::new(shape, 1.0) else {
        return f64::NAN;
    };
    let (mut lo, mut hi) = (0.0, shape.max(1.0));
    while dist.cdf(hi) < p {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if mid <= lo || mid >= hi {
            break;
        }
        if dist.cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// A count as `f64`; exact for every count below 2^53.
pub fn count(n: u64) -> f64 {
    // Calibration counts stay far below 2^53, where u64 → f64 is exact.
    n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values: scipy.stats.binomtest(k, n).proportion_ci(method="exact") (scipy 1.17).
    const CLOPPER_PEARSON: [(u64, u64, f64, f64); 4] = [
        (
            100,
            2000,
            0.040_864_267_718_256_76,
            0.060_481_722_083_110_33,
        ),
        (0, 200, 0.0, 0.018_275_340_355_148_807),
        (200, 200, 0.981_724_659_644_851_2, 1.0),
        (37, 500, 0.052_635_108_549_158_48, 0.100_558_874_746_470_1),
    ];
    const TOLERANCE: f64 = 1e-9;

    #[test]
    fn clopper_pearson_matches_scipy() {
        for (k, n, low, high) in CLOPPER_PEARSON {
            let (l, h) = clopper_pearson(k, n, 0.95);
            assert!((l - low).abs() < TOLERANCE, "{k}/{n}: low {l} vs {low}");
            assert!((h - high).abs() < TOLERANCE, "{k}/{n}: high {h} vs {high}");
        }
    }

    #[test]
    fn acceptance_range_matches_scipy_binom_ppf() {
        // scipy.stats.binom.ppf(0.005, 2000, 0.05) = 76 and binom.ppf(0.995, 2000, 0.05) = 126.
        assert_eq!(acceptance_range(2000, 0.05, 0.99), (76, 126));
    }

    /// Reference values: scipy.stats.chi2.ppf(0.025, 2k)/2 and chi2.ppf(0.975, 2k + 2)/2 (scipy 1.17).
    const GARWOOD: [(u64, f64, f64); 4] = [
        (0, 0.0, 3.688_879_454_113_935_4),
        (1, 0.025_317_807_984_289_876, 5.571_643_390_938_898),
        (5, 1.623_486_390_118_420_7, 11.668_332_079_322_67),
        (134, 112.273_252_920_487_17, 158.704_592_681_160_14),
    ];

    #[test]
    fn poisson_interval_matches_scipy() {
        for (k, low, high) in GARWOOD {
            let (l, h) = poisson_interval(k, 0.95);
            assert!(
                (l - low).abs() < TOLERANCE * low.max(1.0),
                "{k}: low {l} vs {low}"
            );
            assert!(
                (h - high).abs() < TOLERANCE * high,
                "{k}: high {h} vs {high}"
            );
        }
    }

    #[test]
    fn degenerate_inputs_give_the_whole_unit_interval() {
        assert_eq!(clopper_pearson(0, 0, 0.95), (0.0, 1.0));
        assert_eq!(clopper_pearson(5, 3, 0.95), (0.0, 1.0));
    }
}
