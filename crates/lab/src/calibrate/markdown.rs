//! The calibration report as Markdown (docs/CALIBRATION.md).

use super::*;

fn fmt_value(f: &Figure, x: f64) -> String {
    let text = if f.percent {
        format!("{:.2}%", x * 100.0)
    } else if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    };
    text.replace('-', "\u{2212}")
}

/// The Markdown report.
pub fn markdown(c: &Calibration, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# liftlab calibration report\n");
    let _ = writeln!(
        s,
        "Measured, not asserted from theory: every figure below comes from seeded Monte Carlo runs of liftlab's own code \
(liftlab-stats' tests, intervals, confidence sequences and power calculator; liftlab-domain's hashing, \
`decide`, `BanditState`, `DriftMonitor` and the results report's `report::build`). Each figure has its 95% interval (Clopper–Pearson for rates, Student t for means, \
Garwood (Poisson) for alarm counts, binomial order statistics for medians) and the target it is held to.\n"
    );
    let _ = writeln!(
        s,
        "Reproduce with `scripts/calibrate.sh`, which runs:\n\n```\n{command}\n```\n"
    );
    let _ = writeln!(
        s,
        "Runs: {} per frequentist study, {} seeds per bandit study, {} drift runs; master seed {}. Computations that failed \
(counted as not significant or not covered): {}.\n",
        c.runs, c.bandit_runs, c.drift_runs, c.seed, c.failed_computations
    );
    let met = c.figures.iter().filter(|f| f.met == Some(true)).count();
    let held = c.figures.iter().filter(|f| f.met.is_some()).count();
    let _ = writeln!(s, "**{met} of {held} targets met.**\n");
    let studies = [
        ("aa", "## A/A false-positive rate", "Two arms from the same truth; about 1,000 units per run hashed 50/50 with liftlab's GrowthBook-compatible hash (a fresh hash seed per run), Welch's two-sided test at alpha 0.05. The target is the range a correct 5% test lands in with 99% probability."),
        ("coverage", "## Coverage of the true lift", "A 15% cycle-time reduction (treatment median × 0.85, log-normal σ = 0.8) and an escalation rate moving from 10% to 12%, about 1,000 hashed units per run; does the 95% interval contain the truth?"),
        ("peeking", "## Peeking", "A/A on cycle time; 2,000 units looked at 20 times. \"Any p < alpha\" over the looks is the false-positive rate of someone who stops at the first significant look. Sequential p-values are the Waudby-Smith confidence sequence of liftlab-stats with the spec's default τ."),
        ("power", "## Power at the spec's minimum detectable effect", "The default analysis settings of a spec (alpha, power, mde, read from liftlab-domain). The sample size per arm comes from liftlab-stats' power calculator; then that many units per arm are simulated with the true effect equal to the mde, and Welch's test decides. The promise is the calculator's achieved power at the rounded-up sample size."),
        ("", "## The decision (what the verdict reads)", "Every comparison's `decision` is what the verdict, the headline sentence, the key-results table, the forest plot, the CSV and the CLI read (DESIGN.md, \"The decision\"). These figures come from the report itself: at each look the simulated units are folded into per-arm aggregates and liftlab-domain's `report::build` assembles the whole report of a running two-arm experiment, from which the verdict and the decision interval are read. Looks come every 100 units per arm, up to 2,000 per arm. A comparison below the minimum evidence (30 units per arm; 5 successes and 5 failures for a binary metric) is `collecting`: it counts as neither significant nor covering."),
        ("decision_aa", "### A/A under 20 looks", "Two arms from the same truth, one primary metric per spec. The default spec is sequential (always-valid confidence sequences on the relative lift, τ = 5000). The fixed-horizon spec says `\"sequential\": false` with `planned_units` 4,000; it is read at every look, as someone watching the page would, and once at its horizon, as intended."),
        ("decision_coverage", "### Coverage of the adjusted intervals", "One family of three metrics with known true relative lifts: the primary cycle time (log-normal σ = 0.8, −15%), a secondary cost per case (log-normal σ = 1.0, no change) and a secondary resolution rate (30% → 33%, +10%), corrected with Holm's method (the default). Each decision interval is at the level that matches its adjusted p-value (α·p/p_adjusted), so never narrower than the unadjusted one. The default (sequential) spec is held to its always-valid promise: an interval counts as covering only if it covers at every one of the 20 looks. The fixed-horizon spec (`planned_units` 2,000) is read once, at its horizon. Family-wise: all three intervals cover at once."),
        ("decision_harm", "### Guardrail harm test", "A primary cycle-time metric (A/A) beside a guardrail escalation rate (10% in the baseline; direction decrease). The guardrail's decision is a one-sided always-valid harm test at alpha for a relative rise beyond `max_harm`, not corrected for the other metrics; its verdict \"worse\" is what the page warns about and what `auto_pause_on_harm` acts on. Runs are flagged when the verdict is worse at any of the 20 looks, except the last power row, which reads the final look only."),
        ("cuped", "### CUPED on a covariate sent at assignment", "A primary duration metric with `covariate: {\"attribute\": \"estimated_minutes\"}`: each unit's estimate is uniform on 10–50 minutes and its minutes are the estimate (times 0.95 in the treatment of the effect scenario) plus normal noise with sd 8, so the simulator's truth for the share of variance the estimate explains is ρ² = Var(estimate)/(Var(estimate) + 64). The report reads the paired aggregates (x, the estimate, and x + estimate) the store keeps and decides on the CUPED-adjusted lift with one pooled θ."),
        ("thompson", "## Thompson sampling", "liftlab-domain's machinery end to end: units hashed by `decide` into the current allocation period, rewards fed to `BanditState`, a new period opened when `due` (default floor 0.01, warm-up 100 rewards per arm, update every 50). Regret is the pseudo-regret Σ(best rate − served arm's rate); uniform allocation's is exact. Rewards arrive immediately; batching every 50 rewards is the only delay. The change study pairs the two samplers on the same seeds."),
        ("adaptive", "## Adaptive allocation: decisions stratified by allocation period", "Experiments whose weights change (every Thompson experiment; a fixed policy ramped by a spec update) decide on the lift stratified by allocation period: each period's arms compared within the period, the periods weighted by their share of units, periods merged until each compared arm has 25 units (liftlab-stats' `stratified`, read by `report::build`). Each run sends 3,000 units through liftlab-domain's `decide` (and `BanditState`, default warm-up 100 and update every 50, for the bandits) with a binary outcome per unit, and reads the report at the end of the run. Bandit A/A: every arm at 10%; the always-valid decision is held to at most alpha (it spends less than alpha at a single look, so the binomial range of exactly alpha would be the wrong target). Trend: the rate of both arms rises linearly from 10% to 20% over the run and the treatment adds 2 points, so the estimand \"every unit on T against every unit on B, averaged over the run\" is +2 points over the baseline's run average; the stratified estimate's plain 95% interval is held to 95% ± 1.5 pp, the decision's always-valid interval to at least that, and the naive pooled interval (the report's `relative` diagnostic) is shown failing. Ratio metric: the same ramp with a ratio metric, cost per minute (minutes uniform on 5–20 per unit in every arm and period, cost = rate × minutes × a uniform factor on 0.5–1.5, the baseline's rate rising from 1 to 2 over the run and the treatment's 10% lower), decided on the combined ratio estimator stratified by period (`stratified_ratio_lift`); the true lift is −10% exactly. Thompson regret is unchanged by construction: the estimator reads the aggregates and never feeds the allocation (the Thompson rows above come from the same `BanditState`)."),
        ("drift", "## Drift detection", "liftlab-domain's `DriftMonitor` with a spec's default drift settings (Page–Hinkley, CUSUM and the windowed test, in units of the reference window's sd), fed log-normal cycle times of one arm. False alarms: the 10,000 stationary events after the 500-event reference (after an alarm the monitor learns a new reference, as in production). Delay: events until the first detection after the mean shifts up by 30%."),
        ("effect_drift", "## Drift on the effect", "liftlab-domain's `DriftMonitor` watching the treatment's effect: the relative lift of the treatment's cycle time over the baseline's, per window of outcomes, against a reference learned from the first windows, by a two-sided CUSUM on the standardized change (the fixed settings in the rows). Both arms draw log-normal cycle times (σ = 0.8), one outcome per arm in turn; the treatment's are 0.70 of the baseline's. Detection: after 3,000 outcomes per arm the treatment's factor becomes 0.79 (its advantage shrinks by 30%). Workload drift: after 3,000 outcomes per arm both arms' cycle times are multiplied by 1.3, which leaves the relative lift unchanged; any effect alarm in the run counts. Level detections (the study above) are workload drift and never re-baseline; effect detections are what `auto_rebaseline` acts on."),
    ];
    for (study, title, how) in studies {
        if study.is_empty() {
            // A section heading over the studies that follow it.
            if c.figures.iter().any(|f| f.study.starts_with("decision")) {
                let _ = writeln!(s, "{title}\n\n{how}\n");
            }
            continue;
        }
        let rows: Vec<&Figure> = c.figures.iter().filter(|f| f.study == study).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(s, "{title}\n\n{how}\n");
        let _ = writeln!(s, "| Figure | Measured | 95% interval | Target | Met |");
        let _ = writeln!(s, "|---|---:|---|---|:-:|");
        for f in rows {
            let met = match f.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} – {} | {} | {} |",
                f.label,
                fmt_value(f, f.value),
                fmt_value(f, f.low),
                fmt_value(f, f.high),
                f.target,
                met
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "## Reading these figures\n\n\
- The targets are the design's bars; rows marked \"reported\" have none and are there for tuning.\n\
- Every figure is one seeded Monte Carlo estimate: another seed moves it within its interval. The A/A and coverage \
targets are judged on the point estimate, so a correct system misses the A/A range in about 1 seed in 100 \
and the coverage band (±1.5 pp is about three standard errors at 2,000 runs) more rarely still.\n\
- The bandit problems are chosen instances (resolution rates of three model versions); the regret ratio depends on \
the gaps between the arms, as the harder problem shows. Rewards are immediate here, while in production outcomes \
arrive late, which adds regret.\n\
- The decision's always-valid intervals and p-values hold over any number of looks, so at 20 looks they are \
conservative: A/A rates well below alpha and coverage well above 95% are the price of being safe to peek.\n\
- Holm-matched decision intervals (level α·p/p_adjusted) are each at least as wide as the unadjusted interval, \
which is what per-interval coverage rests on. They are not simultaneous intervals: whenever the largest p-value \
is also the largest adjusted one, its comparison keeps the unadjusted level, so all m intervals of a family cover \
at once with probability at least 1 − m·alpha (Bonferroni's inequality), not 1 − alpha.\n\
- The drift monitor runs with a spec's default settings on skewed (log-normal) data. A run in which a shift is \
never detected counts as {DRIFT_EVENTS} events in the median.\n\
- The in-process simulator (`liftlab simulate`, api-spec/examples/scenarios/) checks the same properties end to \
end over HTTP, one seeded run at a time."
    );
    s
}
