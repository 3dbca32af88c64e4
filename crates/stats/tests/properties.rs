//! Property tests (proptest) for the invariants every statistic must keep.

use proptest::prelude::*;

use liftlab_stats::{
    adjusted_alpha, bayesian, benjamini_hochberg, effect_sizes, floor_weights, holm, prob_best,
    relative_lift, sequential,
    sequential::{halfwidth_factor, rho},
    sequential_with_rho, srm, t_test, welch_absolute, Alternative, CoMoments, Moments, SampleStats,
    DEFAULT_TAU, ONE_SIDED_MAX_P,
};

/// Agreement expected between two orders of the same floating-point sums.
const REORDER: f64 = 1e-9;

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
}

/// Whether interval bound `x` is the mirror image −`y` (equal infinities
/// included), to rounding on the scale of the standard error.
fn mirrored(x: f64, y: f64, se: f64) -> bool {
    x == -y || (x + y).abs() <= 1e-9 * (se + x.abs())
}

/// Arm summaries with realistic sizes, means and spreads.
fn arm() -> impl Strategy<Value = SampleStats> {
    (2.0f64..1e6, -1e3f64..1e3, 1e-3f64..1e3)
        .prop_map(|(n, mean, sd)| SampleStats::new(n.floor(), mean, sd * sd))
}

fn alternative() -> impl Strategy<Value = Alternative> {
    prop_oneof![
        Just(Alternative::TwoSided),
        Just(Alternative::Greater),
        Just(Alternative::Less)
    ]
}

fn alpha() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.01), Just(0.05), Just(0.1), 0.001f64..0.4]
}

fn mirror(alt: Alternative) -> Alternative {
    match alt {
        Alternative::TwoSided => Alternative::TwoSided,
        Alternative::Greater => Alternative::Less,
        Alternative::Less => Alternative::Greater,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn p_values_are_probabilities_and_intervals_contain_the_estimate(
        a in arm(), b in arm(), alpha in alpha(), alt in alternative()
    ) {
        let r = welch_absolute(&a, &b, alpha, alt).unwrap();
        prop_assert!((0.0..=1.0).contains(&r.p_value));
        prop_assert!(r.ci_low <= r.estimate && r.estimate <= r.ci_high);
        let s = sequential(r.estimate, r.se, a.n + b.n, alpha, DEFAULT_TAU, alt).unwrap();
        prop_assert!((0.0..=1.0).contains(&s.p_value));
        prop_assert!(s.ci_low <= r.estimate && r.estimate <= s.ci_high);
        if a.mean != 0.0 {
            let rel = relative_lift(&a, &b, alpha, alt).unwrap();
            prop_assert!((0.0..=1.0).contains(&rel.p_value));
            prop_assert!(rel.ci_low <= rel.estimate && rel.estimate <= rel.ci_high);
            let bayes = bayesian(rel.estimate, rel.se, None, alpha, false).unwrap();
            prop_assert!((0.0..=1.0).contains(&bayes.chance_to_win));
            prop_assert!(bayes.ci_low <= bayes.mean && bayes.mean <= bayes.ci_high);
            prop_assert!(bayes.risk_control >= 0.0 && bayes.risk_treatment >= 0.0);
        }
    }

    #[test]
    fn sequential_intervals_are_wider_than_fixed_ones(a in arm(), b in arm(), alpha in 0.001f64..0.2) {
        let r = welch_absolute(&a, &b, alpha, Alternative::TwoSided).unwrap();
        let s = sequential(r.estimate, r.se, a.n + b.n, alpha, DEFAULT_TAU, Alternative::TwoSided).unwrap();
        // The confidence sequence is valid at every look, so it is never tighter than the z interval.
        let z = liftlab_stats::dist::norm_ppf(1.0 - alpha / 2.0);
        prop_assert!(s.ci_high - s.ci_low >= 2.0 * z * r.se * (1.0 - 1e-12));
    }

    #[test]
    fn swapping_arms_flips_the_sign(a in arm(), b in arm(), alpha in alpha(), alt in alternative()) {
        let ab = welch_absolute(&a, &b, alpha, alt).unwrap();
        let ba = welch_absolute(&b, &a, alpha, mirror(alt)).unwrap();
        prop_assert!(close(ab.estimate, -ba.estimate, 1e-12));
        prop_assert!(close(ab.p_value, ba.p_value, 1e-9) || (ab.p_value - ba.p_value).abs() < 1e-15);
        prop_assert!(mirrored(ab.ci_low, ba.ci_high, ab.se));
        prop_assert!(mirrored(ab.ci_high, ba.ci_low, ab.se));
        let (e_ab, e_ba) = (effect_sizes(&a, &b, false).unwrap(), effect_sizes(&b, &a, false).unwrap());
        prop_assert!(close(e_ab.cohens_d, -e_ba.cohens_d, 1e-12));
        prop_assert!(close(e_ab.hedges_g, -e_ba.hedges_g, 1e-12));
        let (s_ab, s_ba) = (
            sequential(ab.estimate, ab.se, a.n + b.n, alpha, DEFAULT_TAU, alt).unwrap(),
            sequential(ba.estimate, ba.se, a.n + b.n, alpha, DEFAULT_TAU, mirror(alt)).unwrap(),
        );
        prop_assert!(close(s_ab.p_value, s_ba.p_value, 1e-12));
    }

    #[test]
    fn merging_in_any_order_gives_the_same_moments(
        values in prop::collection::vec(-1e6f64..1e6, 1..200),
        cuts in prop::collection::vec(0usize..200, 0..6),
        order in any::<prop::sample::Index>(),
    ) {
        let mut sequentially = Moments::new();
        values.iter().for_each(|&x| sequentially.push(x));
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (values.len() + 1)).collect();
        bounds.extend([0, values.len()]);
        bounds.sort_unstable();
        let mut chunks: Vec<Moments> = bounds
            .windows(2)
            .map(|w| {
                let mut m = Moments::new();
                values[w[0]..w[1]].iter().for_each(|&x| m.push(x));
                m
            })
            .collect();
        // Merge in a rotated order, so that different orders are exercised.
        let k = order.index(chunks.len());
        chunks.rotate_left(k);
        let mut merged = Moments::new();
        chunks.iter().for_each(|c| merged.merge(c));
        prop_assert_eq!(merged.n(), sequentially.n());
        prop_assert!(close(merged.mean(), sequentially.mean(), REORDER) || (merged.mean() - sequentially.mean()).abs() < 1e-6);
        prop_assert!(close(merged.m2(), sequentially.m2(), REORDER) || (merged.m2() - sequentially.m2()).abs() < 1e-3);
    }

    #[test]
    fn removing_a_pushed_value_restores_the_moments(
        values in prop::collection::vec(-1e3f64..1e3, 2..100),
        extra in -1e3f64..1e3,
        y in -1e3f64..1e3,
    ) {
        let mut m = Moments::new();
        let mut c = CoMoments::new();
        for (i, &x) in values.iter().enumerate() {
            m.push(x);
            c.push(x, values[values.len() - 1 - i]);
        }
        let (m0, c0) = (m, c);
        m.push(extra);
        m.remove(extra).unwrap();
        c.push(extra, y);
        c.remove(extra, y).unwrap();
        prop_assert_eq!(m.n(), m0.n());
        prop_assert!((m.mean() - m0.mean()).abs() <= 1e-9 * (1.0 + m0.mean().abs()));
        prop_assert!((m.variance() - m0.variance()).abs() <= 1e-9 * (1.0 + m0.variance()));
        prop_assert!((c.covariance() - c0.covariance()).abs() <= 1e-9 * (1.0 + c0.variance_x() + c0.variance_y()));
        prop_assert!((c.variance_y() - c0.variance_y()).abs() <= 1e-9 * (1.0 + c0.variance_y()));
    }

    #[test]
    fn corrections_keep_order_and_bounds(p in prop::collection::vec(0.0f64..=1.0, 0..30)) {
        let (h, bh) = (holm(&p).unwrap(), benjamini_hochberg(&p).unwrap());
        for i in 0..p.len() {
            prop_assert!(p[i] <= bh[i] + 1e-15 && bh[i] <= h[i] + 1e-15 && h[i] <= 1.0);
            for j in 0..p.len() {
                if p[i] < p[j] {
                    prop_assert!(h[i] <= h[j] && bh[i] <= bh[j]);
                }
            }
        }
    }

    #[test]
    fn floored_weights_are_a_distribution(
        w in prop::collection::vec(0.0f64..10.0, 1..8), floor in -0.1f64..0.3
    ) {
        let p = floor_weights(&w, floor);
        let total: f64 = p.iter().sum();
        prop_assert!((total - 1.0).abs() < 1e-12);
        let f = floor.max(0.0);
        for &x in &p {
            let uniform = 1.0 / f64::from(u32::try_from(p.len()).unwrap());
            prop_assert!(x >= f.min(uniform) - 1e-15);
        }
    }

    #[test]
    fn prob_best_is_a_distribution_and_follows_the_arms(
        arms in prop::collection::vec((-3.0f64..3.0, 0.01f64..3.0), 2..6)
    ) {
        let p = prob_best(&arms).unwrap();
        prop_assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        prop_assert!(p.iter().all(|x| (0.0..=1.0).contains(x)));
        let mut reversed = arms.clone();
        reversed.reverse();
        let q = prob_best(&reversed).unwrap();
        for (x, y) in p.iter().zip(q.iter().rev()) {
            prop_assert!((x - y).abs() < 1e-9);
        }
    }

    #[test]
    fn srm_p_value_is_a_probability(
        observed in prop::collection::vec(0.0f64..1e6, 0..6),
        weights in prop::collection::vec(0.0f64..1.0, 0..6),
    ) {
        let s = srm(&observed, &weights);
        prop_assert!((0.0..=1.0).contains(&s.p_value));
        prop_assert!(s.chi2 >= 0.0);
        prop_assert_eq!(s.ok, s.p_value >= 0.001);
    }
}

/// The relative width of the band around p = alpha, and around a bound at 0
/// (relative to the estimate's scale), inside which rounding may put the
/// p-value and the interval on different sides of their thresholds.
const AT_THRESHOLD: f64 = 1e-9;

/// The absolute rounding of alpha inside a quantile's argument: 1 − α/2 is
/// a number near 1, so α/2 itself is only known to half an ulp of 1 there.
const QUANTILE_ARGUMENT: f64 = f64::EPSILON;

/// Checks test inversion: p < alpha exactly when the interval excludes 0
/// (for a one-sided interval, when its finite bound lies beyond 0), except
/// within rounding of either threshold.
fn inverts(
    p: f64,
    alpha: f64,
    estimate: f64,
    se: f64,
    ci_low: f64,
    ci_high: f64,
) -> Result<(), TestCaseError> {
    let scale = se + estimate.abs();
    let at_threshold = (p - alpha).abs() <= AT_THRESHOLD * alpha + QUANTILE_ARGUMENT
        || ci_low.abs() <= AT_THRESHOLD * scale
        || ci_high.abs() <= AT_THRESHOLD * scale;
    let excludes = ci_low > 0.0 || ci_high < 0.0;
    prop_assert!(
        at_threshold || (p < alpha) == excludes,
        "p {p:e} against alpha {alpha:e}, interval [{ci_low:e}, {ci_high:e}]"
    );
    Ok(())
}

/// 10^e for e uniform in [lo, hi).
fn log_uniform(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
    (lo..hi).prop_map(|e| 10f64.powf(e))
}

/// A relative offset from a threshold: tiny to moderate, either sign.
fn offset() -> impl Strategy<Value = f64> {
    (log_uniform(-12.0, -1.0), any::<bool>()).prop_map(|(d, up)| if up { d } else { -d })
}

/// Levels for one-sided sequential tests, which take alpha up to
/// ONE_SIDED_MAX_P, including both edges of gbstats' p-value range.
fn one_sided_alpha() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.05),
        Just(ONE_SIDED_MAX_P),
        log_uniform(-8.0, ONE_SIDED_MAX_P.log10()).prop_map(|a| a.min(ONE_SIDED_MAX_P)),
        0.4998f64..ONE_SIDED_MAX_P,
    ]
}

/// Tuning of the confidence sequence: gbstats' default or anything from 10 to 1e7.
fn tau() -> impl Strategy<Value = f64> {
    prop_oneof![Just(DEFAULT_TAU), log_uniform(1.0, 7.0)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn welch_and_relative_p_values_invert_their_intervals(
        a in arm(), b in arm(), alpha in alpha(), alt in alternative()
    ) {
        let r = welch_absolute(&a, &b, alpha, alt).unwrap();
        inverts(r.p_value, alpha, r.estimate, r.se, r.ci_low, r.ci_high)?;
        if a.mean != 0.0 {
            let rel = relative_lift(&a, &b, alpha, alt).unwrap();
            inverts(rel.p_value, alpha, rel.estimate, rel.se, rel.ci_low, rel.ci_high)?;
        }
    }

    #[test]
    fn t_test_p_values_invert_their_intervals_at_the_threshold(
        se in log_uniform(-6.0, 6.0), dof in log_uniform(0.0, 8.0),
        alpha in log_uniform(-8.0, -1e-3), alt in alternative(), d in offset(),
    ) {
        // The estimate sits a relative d away from the interval's critical value.
        let q = match alt {
            Alternative::TwoSided => liftlab_stats::dist::t_ppf(1.0 - alpha / 2.0, dof),
            Alternative::Greater => liftlab_stats::dist::t_ppf(1.0 - alpha, dof),
            Alternative::Less => -liftlab_stats::dist::t_ppf(1.0 - alpha, dof),
        };
        let r = t_test(q * se * (1.0 + d), se, dof, alpha, alt).unwrap();
        inverts(r.p_value, alpha, r.estimate, r.se, r.ci_low, r.ci_high)?;
    }

    #[test]
    fn two_sided_sequential_p_values_invert_their_intervals(
        z in -10.0f64..10.0, se in log_uniform(-6.0, 6.0), n in log_uniform(0.3, 8.0),
        alpha in log_uniform(-8.0, -1e-3), tau in tau(), near in any::<bool>(), d in offset(),
    ) {
        // Near: the estimate sits a relative d away from the half-width.
        let estimate = if near {
            let r = rho(alpha, tau, true);
            z.signum() * se * halfwidth_factor(n, alpha, r, true) * (1.0 + d)
        } else {
            z * se
        };
        let s = sequential(estimate, se, n, alpha, tau, Alternative::TwoSided).unwrap();
        inverts(s.p_value, alpha, estimate, se, s.ci_low, s.ci_high)?;
    }

    #[test]
    fn one_sided_sequential_p_values_invert_their_intervals(
        z in -10.0f64..10.0, se in log_uniform(-6.0, 6.0), n in log_uniform(0.3, 8.0),
        alpha in one_sided_alpha(), tau in tau(), greater in any::<bool>(),
        near in any::<bool>(), d in offset(),
    ) {
        let (alt, sign) = if greater { (Alternative::Greater, 1.0) } else { (Alternative::Less, -1.0) };
        // Near: the estimate sits a relative d away from the half-width.
        let estimate = if near {
            let r = rho(alpha, tau, false);
            sign * se * halfwidth_factor(n, alpha, r, false) * (1.0 + d)
        } else {
            z * se
        };
        let s = sequential(estimate, se, n, alpha, tau, alt).unwrap();
        inverts(s.p_value, alpha, estimate, se, s.ci_low, s.ci_high)?;
    }
}

/// A family of 2 to 6 comparisons, each as (t statistic, se, dof, n_total),
/// with t statistics spread so that some adjusted p-values fall near alpha.
fn family() -> impl Strategy<Value = Vec<(f64, f64, f64, f64)>> {
    prop::collection::vec(
        (
            -6.0f64..6.0,
            log_uniform(-4.0, 3.0),
            log_uniform(0.3, 6.0),
            log_uniform(1.0, 7.0),
        ),
        2..=6,
    )
}

/// Checks that the interval at the adjusted level excludes 0 exactly when
/// the adjusted p-value is below alpha: the interval inverts p at that
/// level, and p < α·p/p_adj ⟺ p_adj < α away from the threshold.
fn adjusted_agrees(
    p: f64,
    p_adjusted: f64,
    alpha: f64,
    estimate: f64,
    se: f64,
    ci: (f64, f64),
) -> Result<(), TestCaseError> {
    let level = adjusted_alpha(alpha, p, p_adjusted);
    inverts(p, level, estimate, se, ci.0, ci.1)?;
    prop_assert!(
        (p_adjusted - alpha).abs() <= AT_THRESHOLD * alpha || (p < level) == (p_adjusted < alpha),
        "p {p:e}, adjusted {p_adjusted:e}, level {level:e}, alpha {alpha:e}"
    );
    Ok(())
}

/// Holm or Benjamini–Hochberg, as the case picks.
fn correct(p: &[f64], use_holm: bool) -> Vec<f64> {
    if use_holm {
        holm(p).unwrap()
    } else {
        benjamini_hochberg(p).unwrap()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn adjusted_fixed_intervals_agree_with_adjusted_p_values(
        family in family(), alpha in alpha(), alt in alternative(), use_holm in any::<bool>()
    ) {
        let at = |level: f64, &(t, se, dof, _): &(f64, f64, f64, f64)| {
            t_test(t * se, se, dof, level, alt).unwrap()
        };
        let p: Vec<f64> = family.iter().map(|c| at(alpha, c).p_value).collect();
        for ((c, &p), &p_adj) in family.iter().zip(&p).zip(&correct(&p, use_holm)) {
            let r = at(adjusted_alpha(alpha, p, p_adj), c);
            prop_assert_eq!(r.p_value, p);
            adjusted_agrees(p, p_adj, alpha, r.estimate, r.se, (r.ci_low, r.ci_high))?;
        }
    }

    #[test]
    fn adjusted_sequential_intervals_agree_with_adjusted_p_values(
        family in family(), alpha in alpha(), alt in alternative(), tau in tau(),
        use_holm in any::<bool>()
    ) {
        // The family's ρ stays fixed across levels, so p does not move with the level.
        let r = rho(alpha, tau, alt == Alternative::TwoSided);
        let at = |level: f64, &(t, se, _, n): &(f64, f64, f64, f64)| {
            sequential_with_rho(t * se, se, n, level, r, alt).unwrap()
        };
        let p: Vec<f64> = family.iter().map(|c| at(alpha, c).p_value).collect();
        for ((c, &p), &p_adj) in family.iter().zip(&p).zip(&correct(&p, use_holm)) {
            let s = at(adjusted_alpha(alpha, p, p_adj), c);
            prop_assert_eq!(s.p_value, p);
            adjusted_agrees(p, p_adj, alpha, c.0 * c.1, c.1, (s.ci_low, s.ci_high))?;
        }
    }
}
