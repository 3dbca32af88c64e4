//! Comparisons with scipy/statsmodels fixtures written by scripts/gen-stats-fixtures.py (randomized inputs, fixed seed).

use serde_json::Value;

use liftlab_stats::{
    achieved_power, adjusted_alpha, benjamini_hochberg, beta_prob_best, cochran_q, dist,
    effect::cohens_h, effect_sizes, holm, mde_at, prob_best, relative_lift, sample_size_per_arm,
    srm, welch_absolute, Alternative, Baseline, Design, Estimate, PowerSettings, SampleStats,
};

/// Closed-form quantities: relative agreement with scipy.
const CLOSED_FORM: f64 = 1e-9;
/// Below this size, probabilities are compared absolutely (relative error
/// of a tail probability of 1e-300 is not meaningful).
const TINY: f64 = 1e-300;
/// Quadrature against scipy.integrate.quad: absolute agreement.
const QUADRATURE: f64 = 1e-9;
/// Sample size and MDE are roots of the power function; both sides solve
/// them to near machine precision (the fixture polishes statsmodels'
/// solve_power with brentq).
const SOLVER: f64 = 1e-9;

fn load(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["cases"].as_array().unwrap().clone()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Collects mismatches so that a failure lists every case, not just the first.
#[derive(Default)]
struct Check(Vec<String>);

impl Check {
    fn rel(&mut self, got: f64, want: f64, rel: f64, what: &str) {
        self.scaled(got, want, rel, want.abs(), what);
    }

    /// Compares with a tolerance relative to `scale` (for quantities, such as
    /// interval bounds, that are differences of larger terms).
    fn scaled(&mut self, got: f64, want: f64, rel: f64, scale: f64, what: &str) {
        let ok = if want.abs() < TINY {
            got.abs() < TINY * 10.0
        } else {
            (got - want).abs() <= rel * scale
        };
        if !ok {
            self.0.push(format!(
                "{what}: got {got:e}, want {want:e} (relative {:e})",
                ((got - want) / want).abs()
            ));
        }
    }

    /// Compares an interval bound, where `null` in the fixture marks the
    /// open end `open` (±∞) of a one-sided interval; the tolerance is
    /// relative to the bound plus the standard error, since a bound is a
    /// difference.
    fn bound(&mut self, got: f64, want: &Value, open: f64, se: f64, what: &str) {
        match want.as_f64() {
            Some(want) => self.scaled(got, want, CLOSED_FORM, want.abs() + se, what),
            None if got == open => {}
            None => self.0.push(format!("{what}: got {got}, want {open}")),
        }
    }

    /// Compares the fields of `got` that a fixture record gives: estimate,
    /// se, dof, p_value, and the interval bounds (where `null` marks an
    /// open end).
    fn estimate(&mut self, got: &Estimate, want: &Value, what: &str) {
        for (name, value) in [
            ("estimate", got.estimate),
            ("se", got.se),
            ("dof", got.dof),
            ("p_value", got.p_value),
        ] {
            if let Some(w) = want.get(name) {
                self.rel(value, num(w), CLOSED_FORM, &format!("{what} {name}"));
            }
        }
        for (name, value, open) in [
            ("ci_low", got.ci_low, f64::NEG_INFINITY),
            ("ci_high", got.ci_high, f64::INFINITY),
        ] {
            if let Some(w) = want.get(name) {
                self.bound(value, w, open, got.se, &format!("{what} {name}"));
            }
        }
    }

    fn same(&mut self, got: bool, want: bool, what: &str) {
        if got != want {
            self.0.push(format!("{what}: got {got}, want {want}"));
        }
    }

    fn abs(&mut self, got: f64, want: f64, tol: f64, what: &str) {
        if (got - want).abs() > tol {
            self.0.push(format!("{what}: got {got}, want {want}"));
        }
    }

    #[track_caller]
    fn done(self) {
        assert!(
            self.0.is_empty(),
            "{} mismatches:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

fn arm(v: &Value) -> SampleStats {
    SampleStats::new(num(&v["n"]), num(&v["mean"]), num(&v["variance"]))
}

/// An arm as `arm` reads it, or, when the fixture gives successes, a binary
/// arm built as the report builds it (checked against the fixture's mean and
/// variance).
fn arm_or_proportion(v: &Value, check: &mut Check, what: &str) -> SampleStats {
    let Some(successes) = v["successes"].as_f64() else {
        return arm(v);
    };
    let a = SampleStats::proportion(num(&v["n"]), successes);
    check.rel(
        a.mean,
        num(&v["mean"]),
        CLOSED_FORM,
        &format!("{what} mean"),
    );
    check.rel(
        a.variance,
        num(&v["variance"]),
        CLOSED_FORM,
        &format!("{what} variance"),
    );
    a
}

fn alternative(v: &Value) -> Alternative {
    match v.as_str().unwrap() {
        "TwoSided" => Alternative::TwoSided,
        "Greater" => Alternative::Greater,
        "Less" => Alternative::Less,
        other => panic!("unknown alternative {other}"),
    }
}

#[test]
fn welch_matches_scipy() {
    let mut check = Check::default();
    for (i, case) in load("welch.json").iter().enumerate() {
        let (a, b) = (arm(&case["control"]), arm(&case["treatment"]));
        let alpha = num(&case["alpha"]);
        let r = welch_absolute(&a, &b, alpha, alternative(&case["alternative"])).unwrap();
        let what = format!("case {i}");
        check.rel(
            r.estimate / r.se,
            num(&case["statistic"]),
            CLOSED_FORM,
            &format!("{what} t"),
        );
        check.rel(r.se, num(&case["se"]), CLOSED_FORM, &format!("{what} se"));
        check.rel(
            r.dof,
            num(&case["dof"]),
            CLOSED_FORM,
            &format!("{what} dof"),
        );
        check.rel(
            r.p_value,
            num(&case["p_value"]),
            CLOSED_FORM,
            &format!("{what} p"),
        );
        assert!((0.0..=1.0).contains(&r.p_value));
        match case["ci_low"].as_f64() {
            Some(lo) => check.scaled(
                r.ci_low,
                lo,
                CLOSED_FORM,
                lo.abs() + r.se,
                &format!("{what} ci_low"),
            ),
            None => assert_eq!(r.ci_low, f64::NEG_INFINITY),
        }
        match case["ci_high"].as_f64() {
            Some(hi) => check.scaled(
                r.ci_high,
                hi,
                CLOSED_FORM,
                hi.abs() + r.se,
                &format!("{what} ci_high"),
            ),
            None => assert_eq!(r.ci_high, f64::INFINITY),
        }
    }
    check.done();
}

#[test]
fn quantiles_match_scipy() {
    let mut check = Check::default();
    let doc = &load("quantiles.json")[0];
    for c in doc["normal"].as_array().unwrap() {
        let (p, x) = (num(&c["p"]), num(&c["x"]));
        check.rel(dist::norm_ppf(p), x, CLOSED_FORM, &format!("norm.ppf({p})"));
    }
    for c in doc["student"].as_array().unwrap() {
        let (p, dof, x) = (num(&c["p"]), num(&c["dof"]), num(&c["x"]));
        check.rel(
            dist::t_ppf(p, dof),
            x,
            CLOSED_FORM,
            &format!("t.ppf({p}, {dof})"),
        );
    }
    for c in doc["student_tails"].as_array().unwrap() {
        let (x, dof) = (num(&c["x"]), num(&c["dof"]));
        check.rel(
            dist::t_sf(x, dof),
            num(&c["sf"]),
            CLOSED_FORM,
            &format!("t.sf({x}, {dof})"),
        );
        check.rel(
            dist::t_cdf(x, dof),
            num(&c["cdf"]),
            CLOSED_FORM,
            &format!("t.cdf({x}, {dof})"),
        );
    }
    for c in doc["chi2"].as_array().unwrap() {
        let (x, df) = (num(&c["x"]), num(&c["df"]));
        check.rel(
            dist::chi2_sf(x, df),
            num(&c["sf"]),
            CLOSED_FORM,
            &format!("chi2.sf({x}, {df})"),
        );
    }
    check.done();
}

#[test]
fn chi_square_goodness_of_fit_matches_scipy() {
    let mut check = Check::default();
    for (i, case) in load("chisquare.json").iter().enumerate() {
        let observed: Vec<f64> = case["observed"]
            .as_array()
            .unwrap()
            .iter()
            .map(num)
            .collect();
        let weights: Vec<f64> = case["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(num)
            .collect();
        let got = srm(&observed, &weights);
        check.rel(
            got.chi2,
            num(&case["chi2"]),
            CLOSED_FORM,
            &format!("case {i} chi2"),
        );
        check.rel(
            got.p_value,
            num(&case["p_value"]),
            CLOSED_FORM,
            &format!("case {i} p"),
        );
    }
    check.done();
}

#[test]
fn holm_and_bh_match_statsmodels() {
    let mut check = Check::default();
    for (i, case) in load("multitest.json").iter().enumerate() {
        let p: Vec<f64> = case["p_values"]
            .as_array()
            .unwrap()
            .iter()
            .map(num)
            .collect();
        for (name, got) in [
            ("holm", holm(&p).unwrap()),
            ("bh", benjamini_hochberg(&p).unwrap()),
        ] {
            for (g, w) in got.iter().zip(case[name].as_array().unwrap()) {
                check.rel(*g, num(w), CLOSED_FORM, &format!("case {i} {name}"));
            }
        }
    }
    check.done();
}

#[test]
fn absolute_power_matches_statsmodels() {
    let mut check = Check::default();
    for (i, case) in load("power_absolute.json").iter().enumerate() {
        let baseline = Baseline {
            mean: num(&case["mean"]),
            variance: num(&case["variance"]),
        };
        let settings = PowerSettings {
            alpha: num(&case["alpha"]),
            alternative: alternative(&case["alternative"]),
            design: Design::Fixed,
            relative: false,
        };
        let (effect, n, target) = (
            num(&case["effect"]),
            num(&case["n_per_arm"]),
            num(&case["target_power"]),
        );
        let what = format!("case {i}");
        let power = achieved_power(&baseline, effect, n, &settings).unwrap();
        check.rel(
            power,
            num(&case["power"]),
            CLOSED_FORM,
            &format!("{what} power"),
        );
        let needed = sample_size_per_arm(&baseline, effect, target, &settings).unwrap();
        check.rel(
            needed,
            num(&case["sample_size_per_arm"]),
            SOLVER,
            &format!("{what} n"),
        );
        let mde = mde_at(&baseline, n, target, &settings).unwrap();
        check.rel(mde, num(&case["mde"]), SOLVER, &format!("{what} mde"));
    }
    check.done();
}

#[test]
fn relative_and_sequential_power_match_the_documented_formula() {
    let mut check = Check::default();
    for (i, case) in load("power_relative.json").iter().enumerate() {
        let baseline = Baseline {
            mean: num(&case["mean"]),
            variance: num(&case["variance"]),
        };
        let design = match case["tau"].as_f64() {
            Some(tau) => Design::Sequential { tau },
            None => Design::Fixed,
        };
        let settings = PowerSettings {
            alpha: num(&case["alpha"]),
            alternative: Alternative::TwoSided,
            design,
            relative: true,
        };
        let power = achieved_power(
            &baseline,
            num(&case["effect"]),
            num(&case["n_per_arm"]),
            &settings,
        )
        .unwrap();
        check.rel(
            power,
            num(&case["power"]),
            CLOSED_FORM,
            &format!("case {i} power"),
        );
    }
    check.done();
}

#[test]
fn effect_sizes_match_reference() {
    let mut check = Check::default();
    for (i, case) in load("effect_sizes.json").iter().enumerate() {
        let e = effect_sizes(&arm(&case["control"]), &arm(&case["treatment"]), false).unwrap();
        check.rel(
            e.cohens_d,
            num(&case["cohens_d"]),
            CLOSED_FORM,
            &format!("case {i} d"),
        );
        check.rel(
            e.hedges_g,
            num(&case["hedges_g"]),
            CLOSED_FORM,
            &format!("case {i} g"),
        );
        assert_eq!(e.cohens_h, None);
        let h = cohens_h(num(&case["p_control"]), num(&case["p_treatment"])).unwrap();
        check.rel(
            h,
            num(&case["cohens_h"]),
            CLOSED_FORM,
            &format!("case {i} h"),
        );
    }
    check.done();
}

fn pairs(v: &Value) -> Vec<(f64, f64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| (num(&p[0]), num(&p[1])))
        .collect()
}

#[test]
fn normal_prob_best_matches_scipy_quadrature() {
    let mut check = Check::default();
    for (i, case) in load("prob_best_normal.json").iter().enumerate() {
        let got = prob_best(&pairs(&case["arms"])).unwrap();
        for (g, w) in got.iter().zip(case["prob_best"].as_array().unwrap()) {
            check.abs(*g, num(w), QUADRATURE, &format!("case {i}"));
        }
    }
    check.done();
}

#[test]
fn beta_prob_best_matches_scipy_quadrature() {
    let mut check = Check::default();
    for (i, case) in load("prob_best_beta.json").iter().enumerate() {
        let got = beta_prob_best(&pairs(&case["arms"])).unwrap();
        for (g, w) in got.iter().zip(case["prob_best"].as_array().unwrap()) {
            check.abs(*g, num(w), QUADRATURE, &format!("case {i}"));
        }
    }
    check.done();
}

#[test]
fn cochran_q_matches_scipy() {
    let mut check = Check::default();
    for (i, case) in load("cochran_q.json").iter().enumerate() {
        let got = cochran_q(&pairs(&case["segments"])).unwrap();
        check.rel(got.q, num(&case["q"]), CLOSED_FORM, &format!("case {i} q"));
        assert_eq!(got.df, num(&case["df"]));
        check.rel(
            got.p_value,
            num(&case["p_value"]),
            CLOSED_FORM,
            &format!("case {i} p"),
        );
        check.abs(
            got.i_squared,
            num(&case["i_squared"]),
            1e-12,
            &format!("case {i} I2"),
        );
    }
    check.done();
}

#[test]
fn relative_lift_matches_scipy() {
    let mut check = Check::default();
    for (i, case) in load("relative_lift.json").iter().enumerate() {
        let a = arm_or_proportion(&case["control"], &mut check, &format!("case {i} control"));
        let b = arm_or_proportion(
            &case["treatment"],
            &mut check,
            &format!("case {i} treatment"),
        );
        // Estimate, se and dof do not depend on the level or the alternative.
        let r = relative_lift(&a, &b, 0.05, Alternative::TwoSided).unwrap();
        check.estimate(&r, case, &format!("case {i}"));
        for test in case["tests"].as_array().unwrap() {
            let (alpha, alt) = (num(&test["alpha"]), alternative(&test["alternative"]));
            let r = relative_lift(&a, &b, alpha, alt).unwrap();
            check.estimate(&r, test, &format!("case {i} alpha {alpha} {alt:?}"));
        }
    }
    check.done();
}

#[test]
fn adjusted_intervals_match_scipy_and_statsmodels() {
    let mut check = Check::default();
    for (i, family) in load("adjusted_intervals.json").iter().enumerate() {
        let (alpha, alt) = (num(&family["alpha"]), alternative(&family["alternative"]));
        let comparisons = family["comparisons"].as_array().unwrap();
        let arms: Vec<(SampleStats, SampleStats)> = comparisons
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let what = format!("family {i} comparison {j}");
                (
                    arm_or_proportion(&c["control"], &mut check, &what),
                    arm_or_proportion(&c["treatment"], &mut check, &what),
                )
            })
            .collect();
        let p: Vec<f64> = arms
            .iter()
            .map(|(a, b)| relative_lift(a, b, alpha, alt).unwrap().p_value)
            .collect();
        let p_adjusted = match family["method"].as_str().unwrap() {
            "holm" => holm(&p),
            "bh" => benjamini_hochberg(&p),
            other => panic!("unknown correction {other}"),
        }
        .unwrap();
        for (j, ((a, b), c)) in arms.iter().zip(comparisons).enumerate() {
            let what = format!("family {i} comparison {j}");
            check.rel(
                p_adjusted[j],
                num(&c["p_adjusted"]),
                CLOSED_FORM,
                &format!("{what} p_adjusted"),
            );
            let level = adjusted_alpha(alpha, p[j], p_adjusted[j]);
            check.rel(
                level,
                num(&c["level"]),
                CLOSED_FORM,
                &format!("{what} level"),
            );
            // The p-value does not depend on the level, so this checks the
            // unadjusted p as well as the adjusted interval.
            let r = relative_lift(a, b, level, alt).unwrap();
            check.estimate(&r, c, &what);
            let excludes = r.ci_low > 0.0 || r.ci_high < 0.0;
            check.same(
                excludes,
                c["excludes_zero"].as_bool().unwrap(),
                &format!("{what} excludes 0"),
            );
            check.same(
                excludes,
                p_adjusted[j] < alpha,
                &format!("{what} excludes 0 against p_adjusted < alpha"),
            );
        }
    }
    check.done();
}

/// The period-stratified estimator against numpy (scripts/stratified-reference.py), short
/// periods merged by the same rule.
#[test]
fn stratified_lift_matches_numpy() {
    let mut check = Check::default();
    for (i, c) in load("stratified.json").iter().enumerate() {
        let arm = |v: &Value| {
            let mut m = liftlab_stats::Moments::new();
            v.as_array().unwrap().iter().for_each(|x| m.push(num(x)));
            m
        };
        let periods: Vec<_> = c["periods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap(), arm(&p[1]), arm(&p[2])))
            .collect();
        let got = liftlab_stats::stratified_lift(&periods, 2).unwrap();
        check_stratified(
            &mut check,
            &got,
            &c["expected"],
            &format!("stratified case {i}"),
        );
    }
    check.done();
}

/// The stratified ratio (combined ratio estimator per arm) against numpy, from (x, y) pairs.
#[test]
fn stratified_ratio_lift_matches_numpy() {
    let mut check = Check::default();
    for (i, c) in load("stratified_ratio.json").iter().enumerate() {
        let arm = |v: &Value| {
            let mut m = liftlab_stats::CoMoments::new();
            for pair in v.as_array().unwrap() {
                m.push(num(&pair[0]), num(&pair[1]));
            }
            m
        };
        let periods: Vec<_> = c["periods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap(), arm(&p[1]), arm(&p[2])))
            .collect();
        let got = liftlab_stats::stratified_ratio_lift(&periods, 2).unwrap();
        check_stratified(&mut check, &got, &c["expected"], &format!("ratio case {i}"));
    }
    check.done();
}

/// Checks a stratified comparison against its numpy reference.
fn check_stratified(check: &mut Check, got: &liftlab_stats::StratifiedLift, e: &Value, what: &str) {
    for (name, value) in [
        ("baseline_mean", got.baseline_mean),
        ("treatment_mean", got.treatment_mean),
        ("absolute_se", got.absolute_se),
        ("relative", got.relative),
        ("relative_se", got.relative_se),
    ] {
        check.rel(value, num(&e[name]), CLOSED_FORM, &format!("{what} {name}"));
    }
    check.scaled(
        got.absolute,
        num(&e["absolute"]),
        CLOSED_FORM,
        got.baseline_mean.abs(),
        &format!("{what} absolute"),
    );
    check.same(
        Some(got.strata) == usize::try_from(e["strata"].as_u64().unwrap()).ok(),
        true,
        &format!("{what} strata"),
    );
}
