//! The decision studies on real reports (`report::build`): the verdict's A/A rate over looks, the Holm family's coverage, CUPED, and the guardrail harm test.

use super::*;

/// What one run of the decision A/A study saw, per metric (cycle time, escalation): whether
/// the sequential verdict was ever better or worse over the looks, the same for the
/// fixed-horizon verdict, and the fixed-horizon verdict at the planned horizon (the last look).
type DecisionAaRun = ([[bool; 3]; 2], u64);

/// The decision's A/A false-positive rate under 20 looks: the default spec (sequential)
/// against a fixed-horizon spec peeked at the same looks.
pub(super) fn decision_aa_study(
    pool: &Pool,
    runs: u64,
    alpha: f64,
) -> anyhow::Result<(Vec<Figure>, u64)> {
    let horizon = decision_horizon();
    let metrics = [
        metric_json("cycle_time", "duration", "decrease", "primary", None),
        metric_json("escalated", "binary", "decrease", "primary", None),
    ];
    let keys = ["cycle_time", "escalated"];
    let fixed = serde_json::json!({"sequential": false, "planned_units": 2 * horizon});
    let mut reporters = Vec::new();
    for metric in &metrics {
        reporters.push([
            Reporter::new(
                "calibration-decision",
                serde_json::json!([metric]),
                serde_json::json!({}),
            )?,
            Reporter::new(
                "calibration-decision",
                serde_json::json!([metric]),
                fixed.clone(),
            )?,
        ]);
    }
    anyhow::ensure!(
        reporters
            .iter()
            .all(|[s, f]| s.version.spec.analysis().sequential()
                && !f.version.spec.analysis().sequential()),
        "the default spec is not sequential"
    );
    let results: Vec<DecisionAaRun> = pool.map(runs, "decision A/A", |run| {
        let mut rng = pool.rng(30, run);
        let dist = cycle_time();
        let mut data = [TwoArms::new(), TwoArms::new()];
        let mut flags = [[false; 3]; 2];
        let mut failed = 0;
        for look in 1..=PEEKS {
            add_units(&mut data[0], DECISION_LOOK_UNITS, &mut rng, |_, r| {
                dist.sample(r)
            });
            add_units(&mut data[1], DECISION_LOOK_UNITS, &mut rng, |_, r| {
                bernoulli(r, ESCALATION)
            });
            for (k, key) in keys.iter().enumerate() {
                for (s, reporter) in reporters[k].iter().enumerate() {
                    match decided(&reporter.report(&[(key, &data[k])]), key) {
                        Ok((v, _)) => {
                            let significant = matches!(v, Verdict::Better | Verdict::Worse);
                            flags[k][s] |= significant;
                            if s == 1 && look == PEEKS {
                                flags[k][2] = significant;
                            }
                        }
                        Err(()) => failed += 1,
                    }
                }
            }
        }
        (flags, failed)
    });
    let failed = results.iter().map(|r| r.1).sum();
    let events = |k: usize, s: usize| {
        u64::try_from(results.iter().filter(|r| r.0[k][s]).count()).unwrap_or(u64::MAX)
    };
    let a = alpha;
    let (lo, hi) = acceptance_range(runs, alpha, 0.99);
    let what = ["cycle time (log-normal)", "escalation (binary, 10%)"];
    let ids = [
        [
            "decision_aa_sequential_duration",
            "decision_aa_fixed_peeked_duration",
            "decision_aa_fixed_horizon_duration",
        ],
        [
            "decision_aa_sequential_binary",
            "decision_aa_fixed_peeked_binary",
            "decision_aa_fixed_horizon_binary",
        ],
    ];
    let step = DECISION_LOOK_UNITS;
    let mut figures = Vec::new();
    for k in 0..2 {
        figures.push(rate_figure(
            ids[k][0],
            "decision_aa",
            format!(
                "A/A, default spec (sequential), {PEEKS} looks (every {step} units per arm to {horizon}): primary verdict ever better or worse, {}",
                what[k]
            ),
            events(k, 0),
            runs,
            format!("≤ {:.0}%", a * 100.0),
            move |v, _, _| v <= a,
        ));
        figures.push(rate_figure(
            ids[k][1],
            "decision_aa",
            format!(
                "A/A, fixed-horizon spec (planned {} units) peeked at the same {PEEKS} looks: verdict ever better or worse, {}",
                2 * horizon,
                what[k]
            ),
            events(k, 1),
            runs,
            format!(
                "inflated above {:.0}% (why sequential is the default)",
                a * 100.0
            ),
            move |_, low, _| low > a,
        ));
        let at_horizon = events(k, 2);
        figures.push(rate_figure(
            ids[k][2],
            "decision_aa",
            format!(
                "A/A, fixed-horizon spec read once at its planned {} units: verdict better or worse, {}",
                2 * horizon,
                what[k]
            ),
            at_horizon,
            runs,
            format!(
                "in the central 99% binomial range of {:.0}% for {runs} runs: {:.2}%–{:.2}%",
                a * 100.0,
                count(lo) / count(runs) * 100.0,
                count(hi) / count(runs) * 100.0
            ),
            move |_, _, _| lo <= at_horizon && at_horizon <= hi,
        ));
    }
    Ok((figures, failed))
}

/// The coverage study's family: (key, kind, direction, role, true relative lift).
const FAMILY: [(&str, &str, &str, &str, f64); 3] = [
    ("cycle_time", "duration", "decrease", "primary", -0.15),
    ("cost", "cost", "decrease", "secondary", 0.0),
    ("resolved", "binary", "increase", "secondary", 0.10),
];

/// One unit's value of family metric `k` in `arm`.
fn family_value(
    k: usize,
    arm: usize,
    rng: &mut StdRng,
    cycle: &LogNormal<f64>,
    cost: &LogNormal<f64>,
) -> f64 {
    let lift = if arm == 1 { FAMILY[k].4 } else { 0.0 };
    match k {
        0 => cycle.sample(rng) * (1.0 + lift),
        1 => cost.sample(rng) * (1.0 + lift),
        _ => bernoulli(rng, FAMILY_RATE * (1.0 + lift)),
    }
}

/// Whether each family metric's decision interval covers its true lift in `report` (`Err`
/// when a decision is missing).
fn family_covers(report: &Report) -> Result<[bool; 3], ()> {
    let mut covered = [false; 3];
    for (k, (key, _, _, _, truth)) in FAMILY.iter().enumerate() {
        let (_, d) = decided(report, key)?;
        // A collecting comparison has no interval: it covers nothing.
        covered[k] = d.is_some_and(|d| d.ci_low <= *truth && *truth <= d.ci_high);
    }
    Ok(covered)
}

/// Coverage of the decision intervals of a Holm-corrected family of three metrics with known
/// true lifts: the default spec (sequential) at every one of 20 looks, and a fixed-horizon
/// spec read once at its planned horizon.
pub(super) fn decision_coverage_study(
    pool: &Pool,
    runs: u64,
    alpha: f64,
) -> anyhow::Result<(Vec<Figure>, u64)> {
    let metrics: Vec<serde_json::Value> = FAMILY
        .iter()
        .map(|(key, kind, direction, role, _)| metric_json(key, kind, direction, role, None))
        .collect();
    let sequential = Reporter::new(
        "calibration-family",
        serde_json::json!(metrics),
        serde_json::json!({}),
    )?;
    let fixed = Reporter::new(
        "calibration-family",
        serde_json::json!(metrics),
        serde_json::json!({"sequential": false, "planned_units": 2 * FIXED_COVERAGE_UNITS}),
    )?;
    anyhow::ensure!(
        sequential.version.spec.analysis().correction() == Correction::Holm
            && sequential.version.spec.analysis().sequential(),
        "the default spec is no longer sequential with Holm's correction"
    );
    let horizon = decision_horizon();
    let results: Vec<([[bool; 4]; 2], u64)> = pool.map(runs, "decision coverage", |run| {
        let mut rng = pool.rng(31, run);
        let (cycle, cost) = (cycle_time(), cost_dist());
        let mut failed = 0;
        // [sequential at every look, fixed at its horizon] × [three metrics, all three].
        let mut covered = [[true; 4]; 2];
        let mut data = [TwoArms::new(), TwoArms::new(), TwoArms::new()];
        for _ in 0..PEEKS {
            for (k, d) in data.iter_mut().enumerate() {
                add_units(d, DECISION_LOOK_UNITS, &mut rng, |arm, r| {
                    family_value(k, arm, r, &cycle, &cost)
                });
            }
            let report = sequential.report(&[
                (FAMILY[0].0, &data[0]),
                (FAMILY[1].0, &data[1]),
                (FAMILY[2].0, &data[2]),
            ]);
            match family_covers(&report) {
                Ok(c) => {
                    for k in 0..3 {
                        covered[0][k] &= c[k];
                    }
                    covered[0][3] &= c.iter().all(|&x| x);
                }
                Err(()) => {
                    failed += 1;
                    covered[0] = [false; 4];
                }
            }
        }
        let mut data = [TwoArms::new(), TwoArms::new(), TwoArms::new()];
        for (k, d) in data.iter_mut().enumerate() {
            add_units(d, FIXED_COVERAGE_UNITS, &mut rng, |arm, r| {
                family_value(k, arm, r, &cycle, &cost)
            });
        }
        let report = fixed.report(&[
            (FAMILY[0].0, &data[0]),
            (FAMILY[1].0, &data[1]),
            (FAMILY[2].0, &data[2]),
        ]);
        match family_covers(&report) {
            Ok(c) => {
                covered[1] = [c[0], c[1], c[2], c.iter().all(|&x| x)];
            }
            Err(()) => {
                failed += 1;
                covered[1] = [false; 4];
            }
        }
        (covered, failed)
    });
    let failed = results.iter().map(|r| r.1).sum();
    let level = 1.0 - alpha;
    let floor = level - 0.015;
    let target = format!("≥ {:.1}% ({:.0}% − 1.5 pp)", floor * 100.0, level * 100.0);
    let truth = |k: usize| {
        let (key, _, _, _, lift) = FAMILY[k];
        let lift = if lift == 0.0 {
            "0".to_string()
        } else {
            signed(lift * 100.0, 0)
        };
        format!("{} (true lift {lift}%)", key.replace('_', " "))
    };
    let ids = [
        [
            "decision_coverage_sequential_cycle_time",
            "decision_coverage_sequential_cost",
            "decision_coverage_sequential_resolved",
            "decision_coverage_sequential_family",
        ],
        [
            "decision_coverage_fixed_cycle_time",
            "decision_coverage_fixed_cost",
            "decision_coverage_fixed_resolved",
            "decision_coverage_fixed_family",
        ],
    ];
    let when = [
        format!("default spec (sequential), at all {PEEKS} looks to {horizon} units per arm"),
        format!("fixed-horizon spec at its planned {FIXED_COVERAGE_UNITS} units per arm"),
    ];
    let mut figures = Vec::new();
    for (s, (ids, when)) in ids.iter().zip(&when).enumerate() {
        for (k, id) in ids.iter().enumerate() {
            let events =
                u64::try_from(results.iter().filter(|r| r.0[s][k]).count()).unwrap_or(u64::MAX);
            let figure = if k < 3 {
                rate_figure(
                    id,
                    "decision_coverage",
                    format!(
                        "Holm-adjusted decision interval covers {}, {when}",
                        truth(k)
                    ),
                    events,
                    runs,
                    target.clone(),
                    move |v, _, _| v >= floor,
                )
            } else {
                // Holm-matched intervals are each at least as wide as the plain one, but they
                // are not simultaneous intervals: all three at once is only bounded below by
                // 1 − 3α. liftlab promises each interval's coverage, so this row is reported.
                reported_rate(
                    id,
                    "decision_coverage",
                    format!("all three Holm-adjusted decision intervals cover at once (family-wise; not promised, since Holm-matched intervals are not simultaneous: their floor is 1 − 3α), {when}"),
                    events,
                    runs,
                )
            };
            figures.push(figure);
        }
    }
    Ok((figures, failed))
}

/// The covariate's spread: the task's estimated minutes are uniform on this range.
const CUPED_ESTIMATE: (f64, f64) = (10.0, 50.0);

/// The sd of the minutes the estimate does not explain.
const CUPED_NOISE_SD: f64 = 8.0;

/// The true relative lift of the CUPED coverage study (minutes fall by 5%).
const CUPED_LIFT: f64 = -0.05;

/// CUPED on a covariate sent at assignment: the variance the adjustment removes against the
/// simulator's truth ρ² = Var(estimate)/(Var(estimate) + Var(noise)) of an A/A test, the A/A
/// false-positive rate of the adjusted decision over 20 looks, and the coverage of its interval
/// for a true −5% lift at every look.
pub(super) fn cuped_study(
    pool: &Pool,
    runs: u64,
    alpha: f64,
) -> anyhow::Result<(Vec<Figure>, u64)> {
    let reporter = Reporter::new(
        "calibration-cuped",
        serde_json::json!([{
            "key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary",
            "covariate": {"attribute": "estimated_minutes"}
        }]),
        serde_json::json!({}),
    )?;
    let (lo, hi) = CUPED_ESTIMATE;
    let var_estimate = (hi - lo).powi(2) / 12.0;
    let truth = var_estimate / (var_estimate + CUPED_NOISE_SD.powi(2));
    let noise = rand_distr::Normal::new(0.0, CUPED_NOISE_SD)
        .map_err(|e| anyhow::anyhow!("the CUPED noise: {e}"))?;
    let horizon = decision_horizon();
    // Per run: the A/A variance reduction at the horizon, ever significant in the A/A, the
    // effect's interval covering the truth at every look, and failed computations.
    let results: Vec<(Option<f64>, bool, bool, u64)> = pool.map(runs, "CUPED", |run| {
        let mut rng = pool.rng(33, run);
        // [scenario][arm] → the Overall (x), Paired (estimate) and PairSum (x + estimate) moments.
        let mut data = [[[Moments::new(); 3]; 2]; 2];
        let mut reduction = None;
        let (mut ever_significant, mut always_covered, mut failed) = (false, true, 0);
        for look in 1..=PEEKS {
            for (scenario, lift) in [0.0, CUPED_LIFT].into_iter().enumerate() {
                for (arm, parts) in data[scenario].iter_mut().enumerate() {
                    for _ in 0..DECISION_LOOK_UNITS {
                        let estimate = rng.random_range(lo..hi);
                        let factor = if arm == 1 { 1.0 + lift } else { 1.0 };
                        let minutes = (estimate * factor + noise.sample(&mut rng)).max(0.0);
                        parts[0].push(minutes);
                        parts[1].push(estimate);
                        parts[2].push(minutes + estimate);
                    }
                }
                let scopes = [AggScope::Overall, AggScope::Paired, AggScope::PairSum];
                let mut aggregates = Vec::with_capacity(6);
                for (arm, parts) in data[scenario].iter().enumerate() {
                    for (scope, moments) in scopes.iter().zip(parts) {
                        aggregates.push((
                            AggKey {
                                epoch: 0,
                                arm: DECISION_ARMS[arm].to_string(),
                                metric: "minutes".to_string(),
                                scope: scope.clone(),
                            },
                            MetricAggregate {
                                moments: *moments,
                                ..MetricAggregate::default()
                            },
                        ));
                    }
                }
                let units = data[scenario][0][0].n();
                let report = reporter.build(&aggregates, [units, units]);
                let Ok((verdict, decision)) = decided(&report, "minutes") else {
                    failed += 1;
                    continue;
                };
                let cuped = report.metrics[0].comparisons[0].cuped;
                if scenario == 0 {
                    ever_significant |= matches!(verdict, Verdict::Better | Verdict::Worse);
                    if look == PEEKS {
                        reduction = cuped.map(|c| c.variance_reduction);
                    }
                } else if let Some(d) = decision {
                    always_covered &= d.ci_low <= CUPED_LIFT && CUPED_LIFT <= d.ci_high;
                }
            }
        }
        (reduction, ever_significant, always_covered, failed)
    });
    let failed = results.iter().map(|r| r.3).sum();
    let reductions: Vec<f64> = results.iter().filter_map(|r| r.0).collect();
    let count_of = |ever: bool| {
        let hits = results
            .iter()
            .filter(|r| if ever { r.1 } else { r.2 })
            .count();
        u64::try_from(hits).unwrap_or(u64::MAX)
    };
    let a = alpha;
    let floor = 0.95 - 0.015;
    let (mean, _, _) = mean_ci(&reductions);
    let close = (mean - truth).abs() <= 0.02;
    let looks = format!("{PEEKS} looks (every {DECISION_LOOK_UNITS} units per arm to {horizon})");
    Ok((
        vec![
            mean_figure(
                "cuped_variance_reduction",
                "cuped",
                format!(
                    "variance of the relative lift removed by CUPED on the estimate sent at assignment, A/A at {horizon} units per arm (simulator's truth ρ² = {:.1}%)",
                    truth * 100.0
                ),
                &reductions,
                format!("within 2 pp of ρ² = {:.1}%", truth * 100.0),
                Some(close),
                true,
            ),
            rate_figure(
                "cuped_aa",
                "cuped",
                format!("A/A with the covariate, default spec (sequential), {looks}: verdict ever better or worse"),
                count_of(true),
                runs,
                format!("≤ {:.0}%", a * 100.0),
                move |v, _, _| v <= a,
            ),
            rate_figure(
                "cuped_coverage",
                "cuped",
                format!(
                    "CUPED-adjusted decision interval covers the true {:.0}% lift at every one of the {looks}",
                    CUPED_LIFT * 100.0
                ),
                count_of(false),
                runs,
                "≥ 93.5% (95% − 1.5 pp)".to_string(),
                move |v, _, _| v >= floor,
            ),
        ],
        failed,
    ))
}

/// The guardrail harm test: false alarms under A/A over 20 looks, power at a stated harm, and
/// false alarms when the true harm equals the tolerated `max_harm`.
pub(super) fn decision_harm_study(
    pool: &Pool,
    runs: u64,
    alpha: f64,
) -> anyhow::Result<(Vec<Figure>, u64)> {
    let primary = metric_json("cycle_time", "duration", "decrease", "primary", None);
    let reporter = |max_harm: Option<f64>| {
        Reporter::new(
            "calibration-guardrail",
            serde_json::json!([
                primary,
                metric_json("escalated", "binary", "decrease", "guardrail", max_harm)
            ]),
            serde_json::json!({}),
        )
    };
    let strict = reporter(None)?;
    let tolerant = reporter(Some(MAX_HARM))?;
    let tolerated_rate = ESCALATION * (1.0 + MAX_HARM);
    // (reporter, the treatment's escalation rate): A/A, a harm of HARM_LIFT, exactly max_harm.
    let scenarios = [
        (&strict, ESCALATION),
        (&strict, ESCALATION * (1.0 + HARM_LIFT)),
        (&tolerant, tolerated_rate),
    ];
    let horizon = decision_horizon();
    let results: Vec<([bool; 4], u64)> = pool.map(runs, "harm test", |run| {
        let mut rng = pool.rng(32, run);
        let dist = cycle_time();
        let mut primary_data = TwoArms::new();
        let mut guardrail = [TwoArms::new(), TwoArms::new(), TwoArms::new()];
        // Ever flagged in each scenario, and the harm scenario flagged at the last look.
        let mut flagged = [false; 4];
        let mut failed = 0;
        for look in 1..=PEEKS {
            add_units(&mut primary_data, DECISION_LOOK_UNITS, &mut rng, |_, r| {
                dist.sample(r)
            });
            for (s, (reporter, rate)) in scenarios.iter().enumerate() {
                add_units(
                    &mut guardrail[s],
                    DECISION_LOOK_UNITS,
                    &mut rng,
                    |arm, r| bernoulli(r, if arm == 1 { *rate } else { ESCALATION }),
                );
                let report =
                    reporter.report(&[("cycle_time", &primary_data), ("escalated", &guardrail[s])]);
                let Some(g) = report.guardrails.first() else {
                    failed += 1;
                    continue;
                };
                if g.verdict != Verdict::Collecting && g.decision.is_none() {
                    failed += 1;
                }
                let worse = g.verdict == Verdict::Worse;
                flagged[s] |= worse;
                if s == 1 && look == PEEKS {
                    flagged[3] = worse;
                }
            }
        }
        (flagged, failed)
    });
    let failed = results.iter().map(|r| r.1).sum();
    let events =
        |i: usize| u64::try_from(results.iter().filter(|r| r.0[i]).count()).unwrap_or(u64::MAX);
    let a = alpha;
    let step = DECISION_LOOK_UNITS;
    let looks = format!("{PEEKS} looks (every {step} units per arm to {horizon})");
    let pct = |x: f64| format!("{:.1}%", x * 100.0).replace(".0%", "%");
    let figures = vec![
        rate_figure(
            "decision_harm_aa",
            "decision_harm",
            format!("A/A, guardrail escalation {} in both arms, max_harm 0, {looks}: ever flagged worse (harm)", pct(ESCALATION)),
            events(0),
            runs,
            format!("≤ {:.0}%", a * 100.0),
            move |v, _, _| v <= a,
        ),
        reported_rate(
            "decision_harm_power",
            "decision_harm",
            format!(
                "power: escalation {} → {} (+{:.0}% relative), max_harm 0: flagged worse at any of the {looks}",
                pct(ESCALATION),
                pct(ESCALATION * (1.0 + HARM_LIFT)),
                HARM_LIFT * 100.0
            ),
            events(1),
            runs,
        ),
        reported_rate(
            "decision_harm_power_final",
            "decision_harm",
            format!(
                "power: the same harm, flagged worse at the look at {horizon} units per arm"
            ),
            events(3),
            runs,
        ),
        rate_figure(
            "decision_harm_tolerance",
            "decision_harm",
            format!(
                "max_harm {MAX_HARM}, true harm exactly +{:.0}% (escalation {} → {}), {looks}: ever flagged worse",
                MAX_HARM * 100.0,
                pct(ESCALATION),
                pct(tolerated_rate)
            ),
            events(2),
            runs,
            format!("≤ {:.0}%", a * 100.0),
            move |v, _, _| v <= a,
        ),
    ];
    Ok((figures, failed))
}
