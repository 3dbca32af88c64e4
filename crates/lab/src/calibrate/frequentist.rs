//! The frequentist studies on liftlab-stats alone: Welch's A/A false-positive rate, the intervals' coverage, peeking, and power against the calculator.

use super::*;

pub(super) fn aa_study(pool: &Pool, runs: u64, alpha: f64) -> (Vec<Figure>, u64) {
    // Each run: UNITS units hashed 50/50 with a fresh hash seed, both arms from the same truth.
    let results = pool.map(runs, "A/A", |run| {
        let mut rng = pool.rng(1, run);
        let seed = format!("aa-{}-{run}", pool.seed);
        let (mut duration, mut binary) = (TwoArms::new(), TwoArms::new());
        let dist = cycle_time();
        for unit in 0..UNITS {
            let arm = hashed_arm(&seed, unit);
            duration.arms[arm].push(dist.sample(&mut rng));
            binary.arms[arm].push(f64::from(u8::from(rng.random_bool(ESCALATION))));
        }
        [&duration, &binary].map(|d| {
            let (b, t) = d.stats();
            welch_absolute(&b, &t, alpha, Alternative::TwoSided).map(|e| e.p_value < alpha)
        })
    });
    let mut failed = 0;
    let mut figures = Vec::new();
    let (lo, hi) = acceptance_range(runs, alpha, 0.99);
    let target = format!(
        "in the central 99% binomial range of {:.0}% for {runs} runs: {:.2}%–{:.2}%",
        alpha * 100.0,
        count(lo) / count(runs) * 100.0,
        count(hi) / count(runs) * 100.0
    );
    for (i, (id, label)) in [
        (
            "aa_fpr_duration",
            "A/A false-positive rate, Welch, cycle time (log-normal, ~500 units per arm)",
        ),
        (
            "aa_fpr_binary",
            "A/A false-positive rate, Welch, escalation (10%, ~500 units per arm)",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let events = tally(results.iter().map(|r| &r[i]), &mut failed);
        figures.push(rate_figure(
            id,
            "aa",
            label.to_string(),
            events,
            runs,
            target.clone(),
            |_, _, _| lo <= events && events <= hi,
        ));
    }
    (figures, failed)
}

pub(super) fn coverage_study(pool: &Pool, runs: u64, alpha: f64) -> (Vec<Figure>, u64) {
    let scale = 1.0 + COVERAGE_LIFT;
    let true_abs = cycle_mean(scale) - cycle_mean(1.0);
    let true_rel_binary = (COVERAGE_TREATMENT_RATE - ESCALATION) / ESCALATION;
    let results = pool.map(runs, "coverage", |run| {
        let mut rng = pool.rng(2, run);
        let seed = format!("coverage-{}-{run}", pool.seed);
        let (mut duration, mut binary) = (TwoArms::new(), TwoArms::new());
        let dist = cycle_time();
        for unit in 0..UNITS {
            let arm = hashed_arm(&seed, unit);
            let factor = if arm == 1 { scale } else { 1.0 };
            duration.arms[arm].push(dist.sample(&mut rng) * factor);
            let p = if arm == 1 {
                COVERAGE_TREATMENT_RATE
            } else {
                ESCALATION
            };
            binary.arms[arm].push(f64::from(u8::from(rng.random_bool(p))));
        }
        let (b, t) = duration.stats();
        let rel = relative_lift(&b, &t, alpha, Alternative::TwoSided)
            .map(|e| e.ci_low <= COVERAGE_LIFT && COVERAGE_LIFT <= e.ci_high);
        let abs = welch_absolute(&b, &t, alpha, Alternative::TwoSided)
            .map(|e| e.ci_low <= true_abs && true_abs <= e.ci_high);
        let (b, t) = binary.stats();
        let bin = relative_lift(&b, &t, alpha, Alternative::TwoSided)
            .map(|e| e.ci_low <= true_rel_binary && true_rel_binary <= e.ci_high);
        [rel, abs, bin]
    });
    let level = 1.0 - alpha;
    let target = format!("{:.1}% ± 1.5 pp", level * 100.0);
    let mut failed = 0;
    let mut figures = Vec::new();
    for (i, (id, label)) in [
        (
            "coverage_relative_duration",
            "95% CI covers the true relative lift (−15% cycle time), delta method".to_string(),
        ),
        (
            "coverage_absolute_duration",
            format!(
                "95% CI covers the true absolute effect ({} min), Welch",
                signed(true_abs, 2)
            ),
        ),
        (
            "coverage_relative_binary",
            "95% CI covers the true relative lift (escalation 10% → 12%), delta method".to_string(),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let events = tally(results.iter().map(|r| &r[i]), &mut failed);
        figures.push(rate_figure(
            id,
            "coverage",
            label,
            events,
            runs,
            target.clone(),
            |v, _, _| (v - level).abs() <= 0.015,
        ));
    }
    (figures, failed)
}

pub(super) fn peeking_study(pool: &Pool, runs: u64, alpha: f64, tau: f64) -> (Vec<Figure>, u64) {
    let step = PEEK_UNITS / PEEKS;
    let results = pool.map(runs, "peeking", |run| {
        let mut rng = pool.rng(3, run);
        let seed = format!("peek-{}-{run}", pool.seed);
        let dist = cycle_time();
        let mut data = TwoArms::new();
        let (mut naive, mut seq, mut failed) = (false, false, 0_u64);
        for unit in 0..PEEK_UNITS {
            let arm = hashed_arm(&seed, unit);
            data.arms[arm].push(dist.sample(&mut rng));
            if (unit + 1) % step != 0 {
                continue;
            }
            let (b, t) = data.stats();
            match welch_absolute(&b, &t, alpha, Alternative::TwoSided) {
                Ok(e) => {
                    naive |= e.p_value < alpha;
                    match sequential(
                        e.estimate,
                        e.se,
                        data.n_total(),
                        alpha,
                        tau,
                        Alternative::TwoSided,
                    ) {
                        Ok(s) => seq |= s.p_value < alpha,
                        Err(_) => failed += 1,
                    }
                }
                Err(_) => failed += 1,
            }
        }
        (naive, seq, failed)
    });
    let naive = results.iter().filter(|r| r.0).count();
    let seq = results.iter().filter(|r| r.1).count();
    let failed = results.iter().map(|r| r.2).sum();
    let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let a = alpha;
    let figures = vec![
        rate_figure(
            "peeking_naive",
            "peeking",
            format!("A/A, {PEEKS} looks (every {step} units): any naive Welch p < {a}"),
            as_u64(naive),
            runs,
            format!(
                "inflated above {:.0}% (the reason to use sequential tests)",
                a * 100.0
            ),
            move |_, low, _| low > a,
        ),
        rate_figure(
            "peeking_sequential",
            "peeking",
            format!("A/A, {PEEKS} looks: any sequential (always-valid) p < {a}, τ = {tau}"),
            as_u64(seq),
            runs,
            format!("≤ {:.0}%", a * 100.0),
            move |v, _, _| v <= a,
        ),
    ];
    (figures, failed)
}

pub(super) fn power_study(
    pool: &Pool,
    runs: u64,
    analysis: &AnalysisDefaults,
) -> anyhow::Result<(Vec<Figure>, u64)> {
    let settings = PowerSettings {
        alpha: analysis.alpha,
        alternative: Alternative::TwoSided,
        design: Design::Fixed,
        relative: true,
    };
    let mde = analysis.mde;
    let mut figures = Vec::new();
    let mut failed = 0;
    // A duration metric that the AI arm lowers by the mde, and a pass rate it raises by the mde.
    let duration_mean = cycle_mean(1.0);
    let duration_var = duration_mean * duration_mean * ((CYCLE_SIGMA * CYCLE_SIGMA).exp() - 1.0);
    let cases = [
        (
            "power_duration",
            "cycle time (log-normal)",
            Baseline {
                mean: duration_mean,
                variance: duration_var,
            },
            -mde,
        ),
        (
            "power_binary",
            "pass rate (30%)",
            Baseline::proportion(POWER_RATE),
            mde,
        ),
    ];
    for (index, (id, what, baseline, effect)) in cases.into_iter().enumerate() {
        let n_real = sample_size_per_arm(&baseline, effect, analysis.power, &settings)
            .map_err(|e| anyhow::anyhow!("the power calculator failed for {what}: {e}"))?;
        let n = n_real.ceil();
        let promise = achieved_power(&baseline, effect, n, &settings)
            .map_err(|e| anyhow::anyhow!("the power calculator failed for {what}: {e}"))?;
        // n is a whole number of at most a few hundred thousand units here.
        let n_units = n as u64;
        let study = 4 + u64::try_from(index).unwrap_or(0);
        let results = pool.map(runs, "power", |run| {
            let mut rng = pool.rng(study, run);
            let mut data = TwoArms::new();
            if index == 0 {
                let dist = cycle_time();
                for arm in 0..2 {
                    let factor = if arm == 1 { 1.0 + effect } else { 1.0 };
                    for _ in 0..n_units {
                        data.arms[arm].push(dist.sample(&mut rng) * factor);
                    }
                }
            } else {
                for arm in 0..2 {
                    let p = if arm == 1 {
                        POWER_RATE * (1.0 + effect)
                    } else {
                        POWER_RATE
                    };
                    let successes = Binomial::new(n_units, p).map_or(0, |d| d.sample(&mut rng));
                    // Σx = Σx² = successes for 0/1 values.
                    data.arms[arm] =
                        Moments::from_sums(n_units, count(successes), count(successes));
                }
            }
            let (b, t) = data.stats();
            welch_absolute(&b, &t, settings.alpha, Alternative::TwoSided)
                .map(|e| e.p_value < settings.alpha && e.estimate.signum() == effect.signum())
        });
        let events = tally(&results, &mut failed);
        let label = format!(
            "power at mde {}% on {what}, {n_units} units per arm (calculator promises {:.1}%)",
            signed(effect * 100.0, 0),
            promise * 100.0
        );
        figures.push(rate_figure(
            id,
            "power",
            label,
            events,
            runs,
            format!("{:.1}% ± 3 pp", promise * 100.0),
            |v, _, _| (v - promise).abs() <= 0.03,
        ));
    }
    Ok((figures, failed))
}
