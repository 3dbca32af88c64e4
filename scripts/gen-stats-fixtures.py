#!/usr/bin/env python3
"""Generate liftlab-stats reference fixtures with scipy and statsmodels.

Writes crates/stats/tests/fixtures/*.json from randomized inputs drawn with a
fixed numpy seed, so the files are reproducible and CI (which has no Python)
can compare the Rust implementation against independent references.

Usage (from the repository root):
    python3 scripts/gen-stats-fixtures.py              # every fixture
    python3 scripts/gen-stats-fixtures.py NAME.json    # only the named ones

The first fixtures share one random stream, so they are written together;
those listed in INDEPENDENT draw from streams of their own and can be
written alone (by file name), leaving every other file untouched.

Every expected value here comes from scipy or statsmodels (or, where they
have no function, from a formula written out below and documented in the
fixture's "method" field), never from liftlab's own code.
"""

import json
import math
import pathlib
import sys

import numpy as np
import scipy
import statsmodels
from scipy import integrate, optimize, special, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower

SEED = 20240917
OUT = pathlib.Path(__file__).resolve().parent.parent / "crates" / "stats" / "tests" / "fixtures"
rng = np.random.default_rng(SEED)

ALTERNATIVES = {"two-sided": "TwoSided", "greater": "Greater", "less": "Less"}


def header(method, seed=SEED):
    return {
        "generator": "scripts/gen-stats-fixtures.py",
        "seed": seed,
        "scipy": scipy.__version__,
        "statsmodels": statsmodels.__version__,
        "numpy": np.__version__,
        "method": method,
    }


def write(name, method, cases, seed=SEED):
    OUT.mkdir(parents=True, exist_ok=True)
    doc = header(method, seed)
    doc["cases"] = cases
    path = OUT / name
    path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    print(f"wrote {path.relative_to(OUT.parent.parent.parent.parent)} ({len(cases)} cases)")


def random_arm(gen=rng):
    """A random arm: sample size, mean and sample variance on varied scales."""
    n = int(gen.choice([2, 3, 5, 10, 30, 100, 1000, 20000, 500000])) + int(gen.integers(0, 7))
    scale = 10.0 ** gen.uniform(-3, 4)
    mean = gen.normal(0.0, 3.0) * scale
    sd = scale * 10.0 ** gen.uniform(-1.5, 1.0)
    return n, mean, sd * sd


def welch_cases(count=300):
    cases = []
    for _ in range(count):
        na, ma, va = random_arm()
        nb, mb, vb = random_arm()
        if rng.uniform() < 0.5:
            # Many comparisons have similar arms, so p is not always 0 or 1.
            nb, vb = na + int(rng.integers(0, 50)), va * rng.uniform(0.5, 2.0)
            mb = ma + rng.normal(0.0, 3.0) * math.sqrt(va / na + vb / nb)
        alpha = float(rng.choice([0.01, 0.05, 0.1, 0.2]))
        alt = str(rng.choice(list(ALTERNATIVES)))
        res = stats.ttest_ind_from_stats(
            mb, math.sqrt(vb), nb, ma, math.sqrt(va), na, equal_var=False, alternative=alt
        )
        se = math.sqrt(va / na + vb / nb)
        dof = (va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
        est = mb - ma
        if alt == "two-sided":
            q = stats.t.ppf(1 - alpha / 2, dof)
            lo, hi = est - q * se, est + q * se
        elif alt == "greater":
            lo, hi = est - stats.t.ppf(1 - alpha, dof) * se, None
        else:
            lo, hi = None, est + stats.t.ppf(1 - alpha, dof) * se
        cases.append(
            {
                "control": {"n": na, "mean": ma, "variance": va},
                "treatment": {"n": nb, "mean": mb, "variance": vb},
                "alpha": alpha,
                "alternative": ALTERNATIVES[alt],
                "statistic": float(res.statistic),
                "p_value": float(res.pvalue),
                "dof": dof,
                "se": se,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    write(
        "welch.json",
        "scipy.stats.ttest_ind_from_stats(treatment, control, equal_var=False, alternative) for the "
        "statistic and p-value; dof is Welch-Satterthwaite; the CI is estimate -/+ scipy.stats.t.ppf "
        "(1-alpha/2 two-sided, 1-alpha one-sided) times se; null marks the open end of a one-sided CI",
        cases,
    )


def chisquare_cases(count=120):
    cases = []
    for _ in range(count):
        k = int(rng.integers(2, 7))
        weights = rng.uniform(0.05, 1.0, size=k)
        total = int(rng.choice([50, 500, 5000, 200000]))
        shares = weights / weights.sum()
        if rng.uniform() < 0.5:
            # Tilt the shares so some cases show a real mismatch.
            shares = shares * rng.uniform(0.9, 1.1, size=k)
            shares /= shares.sum()
        observed = rng.multinomial(total, shares).astype(float)
        if observed.sum() == 0:
            continue
        expected = weights / weights.sum() * observed.sum()
        res = stats.chisquare(observed, expected)
        cases.append(
            {
                "observed": observed.tolist(),
                "weights": weights.tolist(),
                "chi2": float(res.statistic),
                "p_value": float(res.pvalue),
            }
        )
    write(
        "chisquare.json",
        "scipy.stats.chisquare(observed, weights/sum(weights)*sum(observed))",
        cases,
    )


def multitest_cases(count=150):
    cases = []
    for _ in range(count):
        m = int(rng.integers(1, 25))
        kind = rng.uniform()
        if kind < 0.3:
            p = rng.uniform(0, 1, size=m)
        elif kind < 0.6:
            p = rng.beta(0.3, 3.0, size=m)
        else:
            # Ties and exact values, as p-values rounded in reports have.
            p = np.round(rng.beta(0.5, 2.0, size=m), 2)
        cases.append(
            {
                "p_values": p.tolist(),
                "holm": multipletests(p, method="holm")[1].tolist(),
                "bh": multipletests(p, method="fdr_bh")[1].tolist(),
            }
        )
    write(
        "multitest.json",
        "statsmodels.stats.multitest.multipletests(p, method='holm' | 'fdr_bh')[1]",
        cases,
    )


def quantile_cases():
    probs = [1e-10, 1e-6, 1e-4, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.45, 0.5,
             0.55, 0.7, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999, 0.9999, 1 - 1e-6]
    dofs = [1.0, 1.5, 2.0, 3.0, 4.7, 10.0, 29.3, 55.707, 100.0, 217.887, 1000.0, 5841.742,
            1e4, 5e4, 1e5, 1e6, 1e7]
    normal = [{"p": p, "x": float(stats.norm.ppf(p))} for p in probs]
    student = []
    for dof in dofs:
        for p in probs:
            student.append({"p": p, "dof": dof, "x": float(stats.t.ppf(p, dof))})
    tails = []
    for dof in dofs:
        for x in [0.0, 0.1, 0.5, 1.0, 1.96, 2.5, 4.0, 8.0, 20.0]:
            tails.append({"x": x, "dof": dof, "sf": float(stats.t.sf(x, dof)), "cdf": float(stats.t.cdf(x, dof))})
    chi2 = []
    for df in [1, 2, 3, 5, 10, 30]:
        for x in [0.01, 0.5, 1.0, 3.84, 10.0, 40.0, 100.0]:
            chi2.append({"x": x, "df": float(df), "sf": float(stats.chi2.sf(x, df))})
    write(
        "quantiles.json",
        "scipy.stats.norm.ppf, scipy.stats.t.ppf/.sf/.cdf and scipy.stats.chi2.sf on fixed grids",
        [{"normal": normal, "student": student, "student_tails": tails, "chi2": chi2}],
    )


def power_cases(count=120):
    """Absolute effects against statsmodels; relative and sequential against the documented formulas."""
    cases = []
    npow = NormalIndPower()
    for _ in range(count):
        alpha = float(rng.choice([0.01, 0.05, 0.1]))
        alt = str(rng.choice(["two-sided", "larger"]))
        sd = 10.0 ** rng.uniform(-1, 2)
        n = float(rng.choice([50, 400, 3000, 25000]))
        std_effect = float(rng.uniform(0.02, 0.6))
        target = float(rng.choice([0.5, 0.8, 0.9]))
        power = npow.power(effect_size=std_effect, nobs1=n, alpha=alpha, ratio=1.0, alternative=alt)
        # statsmodels' solve_power stops near 1e-6 relative, so its answers are
        # polished with brentq on statsmodels' own power function.
        n_guess = npow.solve_power(effect_size=std_effect, alpha=alpha, power=target, ratio=1.0,
                                   alternative=alt)
        n_needed = optimize.brentq(
            lambda k: npow.power(std_effect, k, alpha, 1.0, alt) - target,
            n_guess * 0.5, n_guess * 2.0, xtol=1e-13, rtol=1e-15, maxiter=500,
        )
        mde_guess = npow.solve_power(nobs1=n, alpha=alpha, power=target, ratio=1.0, alternative=alt)
        mde = optimize.brentq(
            lambda d: npow.power(d, n, alpha, 1.0, alt) - target,
            mde_guess * 0.5, mde_guess * 2.0, xtol=1e-15, rtol=1e-15, maxiter=500,
        )
        cases.append(
            {
                "mean": float(rng.uniform(1, 100)),
                "variance": sd * sd,
                "effect": std_effect * sd,
                "n_per_arm": n,
                "alpha": alpha,
                "alternative": "TwoSided" if alt == "two-sided" else "Greater",
                "target_power": target,
                "power": float(power),
                "sample_size_per_arm": float(n_needed),
                "mde": float(mde) * sd,
            }
        )
    write(
        "power_absolute.json",
        "statsmodels.stats.power.NormalIndPower (ratio 1): power(effect/sd, n, alpha); nobs1 and the "
        "standardized MDE (times sd) from solve_power, polished by scipy.optimize.brentq on "
        "NormalIndPower.power; absolute effect, fixed horizon",
        cases,
    )

    rel = []
    for _ in range(count):
        alpha = float(rng.choice([0.01, 0.05, 0.1]))
        mean = float(rng.uniform(0.5, 50))
        cv = 10.0 ** rng.uniform(-1, 1)
        var = (cv * mean) ** 2
        n = float(rng.choice([500, 5000, 50000, 400000 / 3]))
        effect = float(rng.uniform(0.005, 0.3))
        tau = None if rng.uniform() < 0.5 else float(rng.choice([1000.0, 5000.0, 20000.0]))
        mean_b = mean * (1 + effect)
        v_rel = var / (mean**2 * n) + var * mean_b**2 / (mean**4 * n)
        z_star = stats.norm.ppf(1 - alpha / 2)
        se = math.sqrt(v_rel)
        if tau is not None:
            big_n = 2 * n
            rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tau)
            z_seq = math.sqrt(big_n) * math.sqrt(
                2 * (big_n * rho**2 + 1) * math.log(math.sqrt(big_n * rho**2 + 1) / alpha) / (big_n * rho) ** 2
            )
            se = se * z_seq / z_star
        d = effect / se
        power = stats.norm.sf(z_star - d) + stats.norm.cdf(-z_star - d)
        rel.append({"mean": mean, "variance": var, "effect": effect, "n_per_arm": n, "alpha": alpha,
                    "tau": tau, "power": float(power)})
    write(
        "power_relative.json",
        "GrowthBook's power formula: SE^2 = v/(m^2 n) + v m_b^2/(m^4 n), m_b = m(1+effect); sequential "
        "designs scale SE by z_seq/z* with z_seq = sqrt(N) sqrt(2(N rho^2+1) ln(sqrt(N rho^2+1)/alpha)/(N rho)^2), "
        "N = 2n; power = norm.sf(z* - effect/SE) + norm.cdf(-z* - effect/SE), z* = norm.ppf(1-alpha/2)",
        rel,
    )


def effect_size_cases(count=80):
    cases = []
    for _ in range(count):
        na, ma, va = random_arm()
        nb, mb, vb = random_arm()
        pooled = ((na - 1) * va + (nb - 1) * vb) / (na + nb - 2)
        d = (mb - ma) / math.sqrt(pooled)
        m = na + nb - 2
        j = math.exp(special.gammaln(m / 2) - special.gammaln((m - 1) / 2)) / math.sqrt(m / 2)
        pa, pb = rng.uniform(0, 1, size=2)
        h = 2 * math.asin(math.sqrt(pb)) - 2 * math.asin(math.sqrt(pa))
        cases.append(
            {
                "control": {"n": na, "mean": ma, "variance": va},
                "treatment": {"n": nb, "mean": mb, "variance": vb},
                "cohens_d": d,
                "hedges_g": d * j,
                "p_control": float(pa),
                "p_treatment": float(pb),
                "cohens_h": h,
            }
        )
    write(
        "effect_sizes.json",
        "Cohen's d with the pooled sample variance; Hedges' g = d * J(m), J from scipy.special.gammaln, "
        "m = n_a + n_b - 2; Cohen's h = 2 asin sqrt(p_b) - 2 asin sqrt(p_a)",
        cases,
    )


def prob_best_cases(count=40):
    cases = []
    for _ in range(count):
        k = int(rng.integers(2, 6))
        means = rng.normal(0, 1, size=k)
        sds = 10.0 ** rng.uniform(-1.5, 0.5, size=k)
        if rng.uniform() < 0.3:
            means[0] = means[1] + 1e-3
        probs = []
        for i in range(k):
            def integrand(z, i=i):
                x = means[i] + sds[i] * z
                val = stats.norm.pdf(z)
                for j in range(k):
                    if j != i:
                        val *= stats.norm.cdf((x - means[j]) / sds[j])
                return val
            pts = sorted({float((means[j] - means[i]) / sds[i]) for j in range(k) if j != i and abs((means[j] - means[i]) / sds[i]) < 12})
            val, _ = integrate.quad(integrand, -12, 12, points=pts or None, epsabs=1e-14, epsrel=1e-12, limit=500)
            probs.append(val)
        cases.append({"arms": [[float(m), float(s)] for m, s in zip(means, sds)], "prob_best": probs})
    write(
        "prob_best_normal.json",
        "P(arm i is best) = integral of phi(z) prod_j Phi((m_i + s_i z - m_j)/s_j) dz by scipy.integrate.quad "
        "(epsabs 1e-14) with break points at the other arms' means",
        cases,
    )

    beta_cases = []
    for _ in range(count // 2):
        k = int(rng.integers(2, 5))
        n = int(rng.choice([0, 5, 50, 500, 5000]))
        rates = rng.uniform(0.05, 0.6, size=k)
        arms = []
        for r in rates:
            trials = n + int(rng.integers(0, 20))
            s = int(rng.binomial(trials, r))
            arms.append((1.0 + s, 1.0 + trials - s))
        probs = []
        for i in range(k):
            a_i, b_i = arms[i]
            def integrand(x, i=i):
                val = stats.beta.pdf(x, *arms[i])
                for j in range(k):
                    if j != i:
                        val *= stats.beta.cdf(x, *arms[j])
                return val
            mean = a_i / (a_i + b_i)
            sd = math.sqrt(a_i * b_i / ((a_i + b_i) ** 2 * (a_i + b_i + 1)))
            lo, hi = max(0.0, mean - 12 * sd), min(1.0, mean + 12 * sd)
            pts = sorted({min(max(a / (a + b), lo), hi) for a, b in arms} - {lo, hi})
            val, _ = integrate.quad(integrand, lo, hi, points=pts or None, epsabs=1e-14, epsrel=1e-12, limit=500)
            probs.append(val)
        beta_cases.append({"arms": [list(a) for a in arms], "prob_best": probs})
    write(
        "prob_best_beta.json",
        "P(arm i is best) = integral of beta.pdf_i(x) prod_j beta.cdf_j(x) dx by scipy.integrate.quad "
        "(epsabs 1e-14) over mean +- 12 sd",
        beta_cases,
    )


def cochran_cases(count=60):
    cases = []
    for _ in range(count):
        k = int(rng.integers(2, 9))
        est = rng.normal(0.05, 0.05, size=k)
        se = rng.uniform(0.005, 0.08, size=k)
        w = 1 / se**2
        pooled = (w * est).sum() / w.sum()
        q = float((w * (est - pooled) ** 2).sum())
        df = k - 1
        cases.append(
            {
                "segments": [[float(e), float(s)] for e, s in zip(est, se)],
                "q": q,
                "df": float(df),
                "p_value": float(stats.chi2.sf(q, df)),
                "i_squared": max(0.0, (q - df) / q) if q > 0 else 0.0,
            }
        )
    write(
        "cochran_q.json",
        "Q = sum w (est - pooled)^2 with w = 1/se^2; p = scipy.stats.chi2.sf(Q, k-1); I^2 = max(0, (Q-df)/Q)",
        cases,
    )


def arm_pair(gen):
    """A control and a treatment arm as dicts: numeric on varied scales, or
    binary proportions (variance p(1-p), ddof 0, with the successes given,
    never 0 or n so that the relative lift has a standard error).
    Half of the pairs differ by a few standard errors, so p-values spread
    over (0, 1) instead of piling up at 0 and 1. The control mean is never 0.
    """
    if gen.uniform() < 0.35:
        n_a = int(gen.choice([20, 100, 1000, 8000, 100000])) + int(gen.integers(0, 50))
        n_b = n_a + int(gen.integers(-10, 50))
        rate = float(gen.uniform(0.02, 0.6))
        lift = float(gen.normal(0.0, 3.0)) * math.sqrt(2 * rate * (1 - rate) / n_a) / rate
        s_a = min(max(int(gen.binomial(n_a, rate)), 1), n_a - 1)
        s_b = int(gen.binomial(n_b, min(max(rate * (1 + lift), 0.0), 1.0)))
        s_b = min(max(s_b, 1), n_b - 1)
        return (
            {"n": n_a, "successes": s_a, "mean": s_a / n_a, "variance": s_a / n_a * (1 - s_a / n_a)},
            {"n": n_b, "successes": s_b, "mean": s_b / n_b, "variance": s_b / n_b * (1 - s_b / n_b)},
        )
    while True:
        na, ma, va = random_arm(gen)
        nb, mb, vb = random_arm(gen)
        if gen.uniform() < 0.5:
            nb, vb = na + int(gen.integers(0, 50)), va * gen.uniform(0.5, 2.0)
            mb = ma + gen.normal(0.0, 3.0) * math.sqrt(va / na + vb / nb)
        if ma != 0.0:
            return {"n": na, "mean": ma, "variance": va}, {"n": nb, "mean": mb, "variance": vb}


def relative_moments(control, treatment):
    """The delta-method relative lift as liftlab's relative_lift documents it
    (gbstats' convention): estimate (m_t - m_b)/|m_b|, variance
    v_t/(n_t m_b^2) + v_b m_t^2/(n_b m_b^4), Welch-Satterthwaite dof."""
    nb, mb, vb = control["n"], control["mean"], control["variance"]
    nt, mt, vt = treatment["n"], treatment["mean"], treatment["variance"]
    estimate = (mt - mb) / abs(mb)
    se = math.sqrt(vt / (nt * mb**2) + vb * mt**2 / (nb * mb**4))
    dof = (vb / nb + vt / nt) ** 2 / ((vb / nb) ** 2 / (nb - 1) + (vt / nt) ** 2 / (nt - 1))
    return estimate, se, dof


def t_interval(estimate, se, dof, alpha, alt):
    """The p-value by scipy.stats.t.sf and the interval by scipy.stats.t.ppf;
    None marks the open end of a one-sided interval."""
    t = estimate / se
    if alt == "two-sided":
        q = stats.t.ppf(1 - alpha / 2, dof)
        return float(min(2 * stats.t.sf(abs(t), dof), 1.0)), estimate - q * se, estimate + q * se
    q = stats.t.ppf(1 - alpha, dof)
    if alt == "greater":
        return float(stats.t.sf(t, dof)), estimate - q * se, None
    return float(stats.t.sf(-t, dof)), None, estimate + q * se


RELATIVE_SEED = [SEED, 1]
RELATIVE_METHOD = (
    "delta-method relative lift (m_t - m_b)/|m_b| with variance v_t/(n_t m_b^2) + "
    "v_b m_t^2/(n_b m_b^4) and Welch-Satterthwaite dof (v_b/n_b + v_t/n_t)^2/((v_b/n_b)^2/(n_b-1) + "
    "(v_t/n_t)^2/(n_t-1)); p by scipy.stats.t.sf (two-sided 2 sf(|t|), greater sf(t), less sf(-t)); "
    "CI estimate -/+ scipy.stats.t.ppf(1-alpha/2 two-sided, 1-alpha one-sided) times se; null marks "
    "the open end of a one-sided CI; binary arms give successes, with variance p(1-p)"
)


def relative_lift_cases(count=150):
    gen = np.random.default_rng(RELATIVE_SEED)
    cases = []
    for _ in range(count):
        control, treatment = arm_pair(gen)
        estimate, se, dof = relative_moments(control, treatment)
        tests = []
        for alpha in [0.01, 0.05, 0.1, float(gen.uniform(0.001, 0.3))]:
            for alt in ALTERNATIVES:
                p, lo, hi = t_interval(estimate, se, dof, alpha, alt)
                tests.append({"alpha": alpha, "alternative": ALTERNATIVES[alt], "p_value": p,
                              "ci_low": lo, "ci_high": hi})
        cases.append({"control": control, "treatment": treatment, "estimate": estimate, "se": se,
                      "dof": dof, "tests": tests})
    write("relative_lift.json", RELATIVE_METHOD, cases, RELATIVE_SEED)


def adjusted_alpha(alpha, p, p_adjusted):
    """alpha p/p_adj, the level at which a test's own interval excludes 0
    exactly when p_adj < alpha (alpha when p_adj is 0 or equals p)."""
    if p_adjusted > 0 and p / p_adjusted < 1:
        return min(max(alpha * p / p_adjusted, sys.float_info.min), alpha)
    return alpha


ADJUSTED_SEED = [SEED, 2]


def adjusted_interval_cases(count=120):
    gen = np.random.default_rng(ADJUSTED_SEED)
    families = []
    while len(families) < count:
        m = int(gen.integers(2, 7))
        alpha = float(gen.choice([0.01, 0.05, 0.1, 0.2]))
        alt = str(gen.choice(list(ALTERNATIVES)))
        method = str(gen.choice(["holm", "fdr_bh"]))
        arms = [arm_pair(gen) for _ in range(m)]
        moments = [relative_moments(c, t) for c, t in arms]
        p = np.array([t_interval(e, s, d, alpha, alt)[0] for e, s, d in moments])
        p_adj = multipletests(p, alpha=alpha, method=method)[1]
        comparisons, fragile = [], False
        for (control, treatment), (e, s, d), p_i, pa in zip(arms, moments, p, p_adj):
            level = adjusted_alpha(alpha, float(p_i), float(pa))
            _, lo, hi = t_interval(e, s, d, level, alt)
            excludes = (lo is not None and lo > 0) or (hi is not None and hi < 0)
            bound = min(abs(b) for b in (lo, hi) if b is not None)
            # A family with a decision within rounding of its threshold would
            # test the last bits of t.ppf, not the agreement; draw again.
            fragile |= abs(pa - alpha) <= 1e-6 * alpha or bound <= 1e-6 * (abs(e) + s)
            assert fragile or excludes == (pa < alpha), (p_i, pa, level, lo, hi)
            comparisons.append({"control": control, "treatment": treatment, "p_value": float(p_i),
                                "p_adjusted": float(pa), "level": level, "ci_low": lo,
                                "ci_high": hi, "excludes_zero": bool(excludes)})
        if not fragile:
            families.append({"alpha": alpha, "alternative": ALTERNATIVES[alt],
                             "method": "holm" if method == "holm" else "bh",
                             "comparisons": comparisons})
    write(
        "adjusted_intervals.json",
        "families of 2-6 comparisons: unadjusted p of the relative lift as in relative_lift.json; "
        "p_adjusted by statsmodels.stats.multitest.multipletests(p, method='holm' | 'fdr_bh')[1]; "
        "level = alpha p/p_adjusted (alpha when p_adjusted is 0 or p >= p_adjusted); the interval is "
        "the relative lift's scipy.stats.t.ppf interval at that level, and excludes_zero equals "
        "p_adjusted < alpha. " + RELATIVE_METHOD,
        families,
        ADJUSTED_SEED,
    )


# Fixtures drawn from the shared stream `rng`, in this order: adding to or
# reordering this list changes every later file.
SHARED = [
    welch_cases,
    chisquare_cases,
    multitest_cases,
    quantile_cases,
    power_cases,
    effect_size_cases,
    prob_best_cases,
    cochran_cases,
]

# Fixtures with a stream of their own, which can be written alone.
INDEPENDENT = {
    "relative_lift.json": relative_lift_cases,
    "adjusted_intervals.json": adjusted_interval_cases,
}


def main(names):
    if not names:
        for generate in SHARED:
            generate()
        for generate in INDEPENDENT.values():
            generate()
        return
    unknown = [n for n in names if n not in INDEPENDENT]
    if unknown:
        sys.exit(f"cannot write {', '.join(unknown)} alone; alone: {', '.join(INDEPENDENT)}")
    for name in names:
        INDEPENDENT[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
