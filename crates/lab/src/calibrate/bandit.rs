//! The Thompson-sampling study: regret against uniform allocation, stationary and after an abrupt change, with and without discounting.

use super::*;

/// A 3-arm Thompson spec over a binary reward, with liftlab's default floor, warm-up and update interval.
fn bandit_spec(discount: f64) -> anyhow::Result<ExperimentSpec> {
    ExperimentSpec::parse(&serde_json::json!({
        "key": "calibration-bandit",
        "arms": [
            {"key": "model-a", "role": "baseline"},
            {"key": "model-b", "role": "treatment"},
            {"key": "model-c", "role": "treatment"}
        ],
        "allocation": {"policy": "thompson", "reward": "resolved", "discount": discount},
        "metrics": [{"key": "resolved", "kind": "binary", "direction": "increase", "role": "primary"}]
    }))
    .map_err(|e| anyhow::anyhow!("the calibration bandit spec is invalid: {e}"))
}

/// One bandit run through liftlab-domain: units hashed into the current period's weights by
/// `decide`, rewards fed to `BanditState`, a new period opened whenever one is due. Returns the
/// dynamic pseudo-regret Σ (best rate − served arm's rate) at the time of each task.
fn bandit_run(
    spec: &ExperimentSpec,
    rates: impl Fn(usize) -> [f64; 3],
    rng: &mut StdRng,
    tag: &str,
) -> anyhow::Result<f64> {
    let mut state = BanditState::new(spec).context("the calibration spec is not a bandit")?;
    let mut period = initial_period(spec, 0);
    let mut regret = 0.0;
    for task in 0..BANDIT_TASKS {
        let now = i64::try_from(task).unwrap_or(i64::MAX);
        let (assignment, arm) = serve(spec, &period, &format!("{tag}-{task}"), now)?;
        let p = rates(task);
        let best = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        regret += best - p[arm];
        let reward = f64::from(u8::from(rng.random::<f64>() < p[arm]));
        state.observe(&assignment.arm, reward)?;
        if state.due(spec) {
            period = state.recompute(spec, period.period + 1, now);
        }
    }
    Ok(regret)
}

pub(super) fn bandit_study(pool: &Pool, runs: u64) -> anyhow::Result<(Vec<Figure>, u64)> {
    let plain = bandit_spec(1.0)?;
    let discounted = bandit_spec(DISCOUNT)?;
    let uniform_regret = |p: &[f64; 3]| {
        let best = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean = p.iter().sum::<f64>() / 3.0;
        count(BANDIT_TASKS as u64) * (best - mean)
    };
    let stationary = |p: [f64; 3]| move |_: usize| p;
    let changing = |task: usize| {
        if task < CHANGE_AT {
            BANDIT_RATES
        } else {
            BANDIT_RATES_AFTER
        }
    };
    let results: Vec<anyhow::Result<[f64; 5]>> = pool.map(runs, "bandits", |run| {
        let tag = format!("s{}-r{run}", pool.seed);
        // The same seed for both samplers of a problem: common random numbers pair the comparison.
        let one = |spec: &ExperimentSpec, rates: &dyn Fn(usize) -> [f64; 3], study: u64| {
            bandit_run(spec, rates, &mut pool.rng(study, run), &tag)
        };
        Ok([
            one(&plain, &stationary(BANDIT_RATES), 10)?,
            one(&plain, &stationary(BANDIT_RATES_HARD), 11)?,
            one(&discounted, &stationary(BANDIT_RATES), 10)?,
            one(&plain, &changing, 12)?,
            one(&discounted, &changing, 12)?,
        ])
    });
    let results: Vec<[f64; 5]> = results.into_iter().collect::<anyhow::Result<_>>()?;
    let column = |i: usize| results.iter().map(|r| r[i]).collect::<Vec<f64>>();
    let uniform = uniform_regret(&BANDIT_RATES);
    let uniform_hard = uniform_regret(&BANDIT_RATES_HARD);
    let ratio = |xs: Vec<f64>, u: f64| xs.into_iter().map(|x| x / u).collect::<Vec<f64>>();
    let rates = |p: [f64; 3]| p.map(|x| format!("{:.0}%", x * 100.0)).join("/");
    let stationary_ratio = mean_ci(&ratio(column(0), uniform));
    let mut figures = vec![
        mean_figure(
            "thompson_regret_ratio",
            "thompson",
            format!(
                "Thompson regret ÷ uniform regret ({uniform:.0}), stationary {} over {BANDIT_TASKS} tasks",
                rates(BANDIT_RATES)
            ),
            &ratio(column(0), uniform),
            "≤ 30%".to_string(),
            Some(stationary_ratio.0 <= 0.30),
            true,
        ),
        mean_figure(
            "thompson_regret_ratio_hard",
            "thompson",
            format!("Thompson regret ÷ uniform regret ({uniform_hard:.0}), harder problem {}", rates(BANDIT_RATES_HARD)),
            &ratio(column(1), uniform_hard),
            "reported".to_string(),
            None,
            true,
        ),
        mean_figure(
            "thompson_discounted_stationary_ratio",
            "thompson",
            format!("discounted (γ = {DISCOUNT}) Thompson regret ÷ uniform, stationary {}", rates(BANDIT_RATES)),
            &ratio(column(2), uniform),
            "reported (the price of forgetting)".to_string(),
            None,
            true,
        ),
    ];
    let undiscounted = column(3);
    let discounted_regret = column(4);
    let difference: Vec<f64> = discounted_regret
        .iter()
        .zip(&undiscounted)
        .map(|(d, u)| d - u)
        .collect();
    let (_, _, diff_high) = mean_ci(&difference);
    figures.push(mean_figure(
        "change_regret_undiscounted",
        "thompson",
        format!(
            "dynamic regret, undiscounted Thompson: {} → {} at task {CHANGE_AT}",
            rates(BANDIT_RATES),
            rates(BANDIT_RATES_AFTER)
        ),
        &undiscounted,
        "reported".to_string(),
        None,
        false,
    ));
    figures.push(mean_figure(
        "change_regret_discounted",
        "thompson",
        format!("dynamic regret, discounted Thompson (γ = {DISCOUNT}), same change"),
        &discounted_regret,
        "reported".to_string(),
        None,
        false,
    ));
    figures.push(mean_figure(
        "change_regret_difference",
        "thompson",
        "discounted − undiscounted dynamic regret (paired by seed)".to_string(),
        &difference,
        "< 0, with the whole 95% interval below 0".to_string(),
        Some(diff_high < 0.0),
        false,
    ));
    Ok((figures, 0))
}
