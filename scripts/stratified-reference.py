#!/usr/bin/env python3
"""Reference values for liftlab-stats' period-stratified estimator (crates/stats/src/stratified.rs).

Writes crates/stats/tests/fixtures/stratified.json: random per-period samples of a baseline
and a treatment arm (some periods deliberately short, so the merge rule is exercised), the
units of each period over all arms, and the stratified means, difference and relative lift
with their standard errors, computed here with numpy from the raw values.

Also writes crates/stats/tests/fixtures/stratified_ratio.json: the same for a ratio metric,
each unit an (x, y) pair, each arm's ratio the combined ratio estimator (stratified mean of x
over stratified mean of y) with its delta-method variance.

Usage: python3 scripts/stratified-reference.py   (numpy; fixed seed, so reruns are identical)
"""
import json
import pathlib

import numpy as np

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "crates/stats/tests/fixtures"
OUT = FIXTURES / "stratified.json"
OUT_RATIO = FIXTURES / "stratified_ratio.json"


def merge(periods):
    """Walk periods in order; close a stratum once both arms have >= 2 units; a trailing
    stratum that never qualifies joins the last closed one."""
    out, open_ = [], None
    for units, b, t in periods:
        if open_ is None:
            open_ = [0, [], []]
        open_[0] += units
        open_[1] += b
        open_[2] += t
        if len(open_[1]) >= 2 and len(open_[2]) >= 2:
            out.append(open_)
            open_ = None
    if open_ is not None and out:
        out[-1][0] += open_[0]
        out[-1][1] += open_[1]
        out[-1][2] += open_[2]
    return out


def reference(periods):
    strata = merge(periods)
    total = sum(s[0] for s in strata)
    w = np.array([s[0] / total for s in strata])
    yb = np.array([np.mean(s[1]) for s in strata])
    yt = np.array([np.mean(s[2]) for s in strata])
    vb = np.array([np.var(s[1], ddof=1) / len(s[1]) for s in strata])
    vt = np.array([np.var(s[2], ddof=1) / len(s[2]) for s in strata])
    mu_b, mu_t = float(w @ yb), float(w @ yt)
    var_b, var_t = float(w**2 @ vb), float(w**2 @ vt)
    # Relative lift L = mu_t/mu_b - 1; gradient (1/mu_b, -mu_t/mu_b^2) on independent (mu_t, mu_b).
    g = np.array([1 / mu_b, -mu_t / mu_b**2])
    cov = np.diag([var_t, var_b])
    return {
        "baseline_mean": mu_b,
        "treatment_mean": mu_t,
        "absolute": mu_t - mu_b,
        "absolute_se": float(np.sqrt(var_t + var_b)),
        "relative": (mu_t - mu_b) / abs(mu_b),
        "relative_se": float(np.sqrt(g @ cov @ g)),
        "strata": len(strata),
    }


def ratio_reference(periods):
    """Periods of (units, baseline pairs, treatment pairs); the lift of the combined ratios."""
    strata = merge(periods)
    total = sum(s[0] for s in strata)
    w = np.array([s[0] / total for s in strata])
    arms = []
    for a in (1, 2):
        x = [np.array([p[0] for p in s[a]]) for s in strata]
        y = [np.array([p[1] for p in s[a]]) for s in strata]
        mx = float(w @ np.array([xi.mean() for xi in x]))
        my = float(w @ np.array([yi.mean() for yi in y]))
        # The covariance matrix of (mean x, mean y) of each stratum, weighted by w_p^2.
        c = sum(wp**2 * np.cov(xi, yi, ddof=1) / len(xi) for wp, xi, yi in zip(w, x, y))
        r = mx / my
        grad = np.array([1 / my, -mx / my**2])
        arms.append((r, float(grad @ c @ grad)))
    (rb, vb), (rt, vt) = arms
    g = np.array([1 / rb, -rt / rb**2])
    return {
        "baseline_mean": rb,
        "treatment_mean": rt,
        "absolute": rt - rb,
        "absolute_se": float(np.sqrt(vt + vb)),
        "relative": (rt - rb) / abs(rb),
        "relative_se": float(np.sqrt(g @ np.diag([vt, vb]) @ g)),
        "strata": len(strata),
    }


def ratio_cases(rng):
    cases = []
    for case in range(30):
        k = int(rng.integers(1, 7))
        periods = []
        for p in range(k):
            nb = int(rng.integers(0, 4)) if rng.random() < 0.2 else int(rng.integers(2, 60))
            nt = int(rng.integers(0, 4)) if rng.random() < 0.2 else int(rng.integers(2, 60))
            # Minutes (x) over cases handled (y): y of 1 to 5, x about 12 minutes a case.
            def pairs(n, scale):
                y = rng.integers(1, 6, n).astype(float)
                x = np.round(y * rng.gamma(4.0, scale / 4.0, n), 3)
                return [[float(a), float(b)] for a, b in zip(x, y)]
            periods.append([nb + nt + int(rng.integers(0, 30)), pairs(nb, 12.0 + p), pairs(nt, 10.0 + p)])
        if not merge(periods):
            continue
        ref = ratio_reference(periods)
        if not all(np.isfinite(list(ref.values()))) or ref["absolute_se"] == 0:
            continue
        cases.append({"periods": periods, "expected": ref})
    return cases


def write(path, cases):
    lines = ",\n  ".join(json.dumps(c) for c in cases)
    path.write_text(
        '{"source": "scripts/stratified-reference.py (numpy)",\n "cases": [\n  ' + lines + "\n ]\n}\n"
    )
    print(f"{len(cases)} cases -> {path.relative_to(FIXTURES.parent.parent.parent.parent)}")


def main():
    rng = np.random.default_rng(20201216)
    cases = []
    for case in range(40):
        k = int(rng.integers(1, 7))
        periods = []
        for p in range(k):
            binary = case % 2 == 0
            nb = int(rng.integers(0, 4)) if rng.random() < 0.2 else int(rng.integers(2, 60))
            nt = int(rng.integers(0, 4)) if rng.random() < 0.2 else int(rng.integers(2, 60))
            if binary:
                b = rng.binomial(1, 0.2 + 0.05 * p, nb).astype(float).tolist()
                t = rng.binomial(1, 0.25 + 0.05 * p, nt).astype(float).tolist()
            else:
                b = np.round(rng.gamma(2.0, 5.0 + p, nb), 3).tolist()
                t = np.round(rng.gamma(2.0, 6.0 + p, nt), 3).tolist()
            units = nb + nt + int(rng.integers(0, 30))
            periods.append([units, b, t])
        strata = merge(periods)
        if not strata:
            continue
        ref = reference(periods)
        if not all(np.isfinite(list(ref.values()))) or ref["absolute_se"] == 0 or ref["baseline_mean"] == 0:
            continue
        cases.append({"periods": periods, "expected": ref})
    write(OUT, cases)
    write(OUT_RATIO, ratio_cases(np.random.default_rng(20261203)))


if __name__ == "__main__":
    main()
