//! Subcommands that drive a running server: `apply`, `start`/`pause`/`stop`, `results` and `audit verify --server`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::ValueEnum;
use liftlab_domain::report::text::{before_data, level, power_note};
use liftlab_domain::report::{
    ComparisonResult, DecisionTest, Interval, MetricResult, Report, Verdict,
};
use liftlab_lab::client::{segment, Client};
use serde_json::Value;

use crate::connect::ServerArgs;

/// Create an experiment from a spec file, or replace its spec (a new version) when it exists.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// The spec file (JSON).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
}

/// Change an experiment's status.
#[derive(clap::Args, Debug)]
pub struct LifecycleArgs {
    /// The experiment key.
    #[arg(value_name = "EXPERIMENT")]
    experiment: String,
    /// Why, recorded with the new version.
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// How `liftlab results` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ResultsFormat {
    /// A readable per-metric summary: lifts with intervals, p-values and verdicts.
    Table,
    /// The results JSON as the API serves it.
    Json,
    /// The results CSV as the API serves it.
    Csv,
}

/// Show an experiment's results.
#[derive(clap::Args, Debug)]
pub struct ResultsArgs {
    /// The experiment key.
    #[arg(value_name = "EXPERIMENT")]
    experiment: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ResultsFormat::Table)]
    format: ResultsFormat,
    #[command(flatten)]
    server: ServerArgs,
}

/// The lifecycle transitions `liftlab start|pause|stop` ask for: the domain's, named in the
/// API's paths by [`Transition::as_str`].
pub use liftlab_domain::Transition;

/// Runs `liftlab apply`.
pub fn apply(args: ApplyArgs) -> anyhow::Result<()> {
    let client = args.server.client()?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let spec: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", args.file.display()))?;
    let (verb, version) = apply_spec(&client, &spec)
        .with_context(|| format!("cannot apply {}", args.file.display()))?;
    println!("{verb} experiment {}", describe(&version));
    Ok(())
}

/// Creates the experiment of `spec`, or replaces its spec when it exists; returns what was
/// done ("created" or "updated") and the server's experiment document.
pub fn apply_spec(client: &Client, spec: &Value) -> anyhow::Result<(&'static str, Value)> {
    // Without a usable key there is nothing to look up: let the server list every problem.
    let key = spec
        .get("key")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty());
    let existing = match key {
        Some(key) => client.exists(&format!("/v1/experiments/{}", segment(key)))?,
        None => false,
    };
    match (existing, key) {
        (true, Some(key)) => Ok((
            "updated",
            client.put_json(&format!("/v1/experiments/{}", segment(key)), spec)?,
        )),
        _ => Ok(("created", client.post_json("/v1/experiments", spec)?)),
    }
}

/// Runs `liftlab start|pause|stop`.
pub fn lifecycle(transition: Transition, args: LifecycleArgs) -> anyhow::Result<()> {
    let client = args.server.client()?;
    let body = match &args.reason {
        Some(reason) => serde_json::json!({ "reason": reason }),
        None => serde_json::json!({}),
    };
    let version = client
        .post_json(
            &format!(
                "/v1/experiments/{}/{}",
                segment(&args.experiment),
                transition.as_str()
            ),
            &body,
        )
        .with_context(|| {
            format!(
                "cannot {} experiment {}",
                transition.as_str(),
                args.experiment
            )
        })?;
    println!("{}", describe(&version));
    Ok(())
}

/// `KEY: version N, STATUS` from an experiment document.
pub fn describe(version: &Value) -> String {
    let key = version.get("key").and_then(Value::as_str).unwrap_or("?");
    let number = version.get("version").and_then(Value::as_u64).unwrap_or(0);
    let status = version.get("status").and_then(Value::as_str).unwrap_or("?");
    format!("{key}: version {number}, {status}")
}

/// Runs `liftlab results`.
pub fn results(args: ResultsArgs) -> anyhow::Result<()> {
    let client = args.server.client()?;
    let path = format!("/v1/experiments/{}/results", segment(&args.experiment));
    match args.format {
        ResultsFormat::Csv => {
            let csv = client
                .get_text(&format!("{path}?format=csv"))
                .with_context(|| format!("cannot get the results of {}", args.experiment))?;
            print!("{csv}");
        }
        ResultsFormat::Json => {
            let json = client
                .get_json(&path)
                .with_context(|| format!("cannot get the results of {}", args.experiment))?;
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        ResultsFormat::Table => {
            let json = client
                .get_json(&path)
                .with_context(|| format!("cannot get the results of {}", args.experiment))?;
            let report: Report = serde_json::from_value(json)
                .context("the server's results do not have the shape this liftlab expects (is it the same version?)")?;
            print!("{}", table(&report));
        }
    }
    Ok(())
}

/// Runs `liftlab audit verify --server`: exits 1 when the chain does not verify.
pub fn verify_remote(server: &ServerArgs) -> anyhow::Result<()> {
    let client = server.client()?;
    let answer = client
        .get_json("/v1/audit/verify")
        .context("cannot verify the audit chain")?;
    let records = answer.get("records").and_then(Value::as_u64).unwrap_or(0);
    if answer.get("ok").and_then(Value::as_bool) == Some(true) {
        println!("audit chain ok: {records} records verified");
        return Ok(());
    }
    let first_bad = answer
        .get("first_bad")
        .and_then(Value::as_u64)
        .map_or_else(|| "?".to_string(), |n| n.to_string());
    let reason = answer
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("no reason given");
    anyhow::bail!(
        "audit chain broken at record {first_bad} ({records} records verified before it): {reason}"
    )
}

fn pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

fn num(x: f64) -> String {
    num_at(x, x.abs())
}

/// Formats `x` with the precision that suits numbers of size `scale`, so that an estimate and
/// its interval share one format.
fn num_at(x: f64, scale: f64) -> String {
    if scale != 0.0 && !(0.01..1e6).contains(&scale) {
        format!("{x:.3e}")
    } else if scale < 10.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.1}")
    }
}

fn p(x: f64) -> String {
    if x < 0.0001 {
        "< 0.0001".to_string()
    } else {
        format!("{x:.4}")
    }
}

fn interval(i: &Interval, f: fn(f64) -> String) -> String {
    format!("{} [{}, {}]", f(i.estimate), f(i.ci_low), f(i.ci_high))
}

/// An interval of plain numbers, all three in the format of the largest.
fn num_interval(i: &Interval) -> String {
    let scale = i.estimate.abs().max(i.ci_low.abs()).max(i.ci_high.abs());
    let f = |x| num_at(x, scale);
    format!("{} [{}, {}]", f(i.estimate), f(i.ci_low), f(i.ci_high))
}

fn verdict(v: Verdict) -> &'static str {
    v.as_str()
}

fn comparison_line(c: &ComparisonResult) -> String {
    let mut line = format!("  {} vs {}: ", c.arm, c.baseline);
    match c.decision.filter(|_| c.verdict != Verdict::Collecting) {
        Some(d) => {
            let i = Interval {
                estimate: d.estimate,
                ci_low: d.ci_low,
                ci_high: d.ci_high,
            };
            let _ = write!(
                line,
                "lift {} ({} {}%{}) p {}",
                interval(&i, pct),
                d.method.interval_name(),
                level(1.0 - d.interval_level),
                if d.test == DecisionTest::Harm {
                    ", harm test"
                } else {
                    ""
                },
                p(d.p_value)
            );
        }
        None if c.verdict == Verdict::Collecting => {
            let _ = write!(line, "collecting ({})", c.evidence.shortfall());
        }
        None => line.push_str("lift n/a"),
    }
    let _ = write!(line, "  → {}", verdict(c.verdict));
    let mut diagnostics = String::new();
    if let Some(a) = &c.absolute {
        let _ = write!(diagnostics, "  abs {}", num_interval(a));
    }
    if let Some(pv) = c.p_value {
        let _ = write!(diagnostics, "  Welch p {}", p(pv));
    }
    if let Some(pa) = c.p_value_adjusted {
        let _ = write!(diagnostics, " (adj {})", p(pa));
    }
    if let Some(s) = &c.sequential {
        let _ = write!(diagnostics, "  seq p {}", p(s.p_value));
    }
    if let Some(b) = &c.bayes {
        let _ = write!(diagnostics, "  P(win) {:.0}%", b.chance_to_win * 100.0);
    }
    // While collecting with nothing computed, the shortfall above already says why.
    if diagnostics.is_empty() && c.verdict == Verdict::Collecting {
        return line;
    }
    if let Some(note) = &c.note {
        let _ = write!(diagnostics, "  ({note})");
    }
    let _ = write!(line, "\n    diagnostics:{diagnostics}");
    line
}

fn metric_block(out: &mut String, m: &MetricResult) {
    let kind = serde_json::to_value(m.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let role = serde_json::to_value(m.role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let direction = serde_json::to_value(m.direction)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let _ = writeln!(out, "\n{} ({role}, {kind}, {direction} is better)", m.key);
    let _ = writeln!(
        out,
        "  {:<20} {:>8} {:>12} {:>12}",
        "arm", "n", "mean", "sd"
    );
    for a in &m.arms {
        let _ = write!(
            out,
            "  {:<20} {:>8} {:>12} {:>12}",
            a.arm,
            a.n,
            // No values, no mean; one value, no sd.
            if a.n > 0 {
                num(a.mean)
            } else {
                "—".to_string()
            },
            if a.n > 1 {
                num(a.sd)
            } else {
                "—".to_string()
            }
        );
        if let Some(ipw) = a.ipw_mean {
            let _ = write!(out, "   ipw mean {}", num(ipw));
        }
        let _ = writeln!(out);
    }
    for c in &m.comparisons {
        let _ = writeln!(out, "{}", comparison_line(c));
    }
}

/// The readable summary of a report.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let before_data = before_data(r);
    let status = match before_data {
        Some(words) => format!("{}, {words}", r.status),
        None => r.status.to_string(),
    };
    let _ = writeln!(
        out,
        "{} · version {} · {status} · epoch {} · {} allocation",
        r.experiment, r.version, r.epoch, r.policy
    );
    let _ = writeln!(out, "{}", r.verdict);
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {}", w.message);
    }
    let arms: Vec<String> = r
        .arms
        .iter()
        .map(|a| {
            format!(
                "{} {} assigned ({:.0}% expected)",
                a.key,
                a.assigned,
                a.expected_share * 100.0
            )
        })
        .collect();
    let _ = writeln!(out, "arms: {}", arms.join(" · "));
    if before_data.is_none() {
        let _ = writeln!(
            out,
            "sample ratio: {} (chi² {:.2}, p {})",
            if r.srm.ok { "ok" } else { "MISMATCH" },
            r.srm.chi2,
            p(r.srm.p_value)
        );
    } else {
        let _ = writeln!(out, "sample ratio: not judged (no units assigned yet)");
    }
    for m in &r.metrics {
        metric_block(&mut out, m);
    }
    if !r.drift.is_empty() {
        let _ = writeln!(out, "\ndrift:");
        for d in &r.drift {
            let _ = writeln!(
                out,
                "  {} in {} went {} at {} ({}; {})",
                d.metric,
                d.arm,
                d.direction.as_str(),
                d.detected_at,
                d.detector.as_str(),
                serde_json::to_value(d.action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            );
        }
    }
    if !r.effect_drift.is_empty() {
        let _ = writeln!(out, "\neffect drift (the treatment's advantage changed):");
        for d in &r.effect_drift {
            let pct = |e: &liftlab_domain::drift::EffectEstimate| {
                format!(
                    "{:+.1}% [{:+.1}%, {:+.1}%]",
                    e.estimate * 100.0,
                    e.ci_low * 100.0,
                    e.ci_high * 100.0
                )
            };
            let _ = writeln!(
                out,
                "  {} lift of {} over {}: {} before, {} after, at {} ({})",
                d.metric,
                d.arm,
                d.baseline,
                pct(&d.effect_before),
                pct(&d.effect_after),
                d.detected_at,
                serde_json::to_value(d.action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(roi) = &r.roi {
        let _ = writeln!(out, "\nroi ({}):", roi.currency);
        for (arm, cost) in &roi.cost_per_case {
            let _ = writeln!(out, "  cost per case, {arm}: {}", num(*cost));
        }
        if let Some(s) = &roi.monthly_savings {
            let arm = roi.arm.as_deref().unwrap_or("treatment");
            let _ = writeln!(out, "  monthly savings with {arm}: {}", num_interval(s));
        }
        if let Some(h) = &roi.hours_saved_per_month {
            let _ = writeln!(out, "  hours saved per month: {}", num_interval(h));
        }
    }
    if let Some(power) = &r.power {
        let mut line = format!(
            "\npower: {} at mde {} with {} units per arm",
            power.metric,
            pct(power.mde),
            power.n_per_arm
        );
        if let Some(a) = power.achieved_power {
            let _ = write!(
                line,
                ": {:.0}% (target {:.0}%)",
                a * 100.0,
                power.target_power * 100.0
            );
        }
        if let Some(more) = power.more_units_needed {
            let _ = write!(line, "; {more} more units needed");
        }
        if let Some(note) = &power.note {
            let _ = write!(line, " (not computed: {note})");
        }
        if let Some(why) = power_note(r) {
            let _ = write!(line, "\n  {why}");
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use clap::CommandFactory as _;
    use expect_test::{expect, Expect};
    use liftlab_domain::model::{AggDelta, AggKey, AggScope, AllocationPeriod, MetricAggregate};
    use liftlab_domain::report::{self, ArmTally, EpochInfo, PeriodCount, Report, ReportInput};
    use liftlab_domain::{ExperimentSpec, ExperimentVersion, Transition};
    use liftlab_testkit::spec::fixed;

    const T0: i64 = 1_772_323_200_000; // 2026-03-01T00:00:00Z.

    fn spec() -> ExperimentSpec {
        ExperimentSpec::parse(&fixed("support-ai")).expect("a valid spec")
    }

    /// The report of `version` with `units` units per arm, each with an outcome whose values
    /// `values(arm, i)` gives as (minutes, escalated).
    fn report_of(
        version: &ExperimentVersion,
        units: u64,
        values: fn(&str, u64) -> (f64, f64),
    ) -> Report {
        let mut aggregates: BTreeMap<AggKey, MetricAggregate> = BTreeMap::new();
        let mut assignments = Vec::new();
        let mut tallies = Vec::new();
        for arm in ["human", "ai"] {
            for i in 0..units {
                let (minutes, escalated) = values(arm, i);
                for (metric, new) in [("minutes", minutes), ("escalated", escalated)] {
                    let key = AggKey {
                        epoch: 0,
                        arm: arm.into(),
                        metric: metric.into(),
                        scope: AggScope::Overall,
                    };
                    aggregates.entry(key.clone()).or_default().apply(&AggDelta {
                        key,
                        old: None,
                        new,
                        propensity: 0.5,
                    });
                }
            }
            if units > 0 {
                assignments.push(PeriodCount {
                    period: 0,
                    arm: arm.into(),
                    count: units,
                });
            }
            tallies.push(ArmTally {
                arm: arm.into(),
                units,
                outcomes: units,
                handled_by: BTreeMap::new(),
            });
        }
        let aggregates: Vec<_> = aggregates.into_iter().collect();
        let periods = vec![AllocationPeriod {
            experiment: "support-ai".into(),
            period: 0,
            weights: vec![("human".into(), 0.5), ("ai".into(), 0.5)],
            opened_at: T0,
            rewards_seen: 0,
        }];
        let epochs = vec![EpochInfo {
            epoch: 0,
            reason: "created".into(),
            started_at: T0,
            version: 1,
        }];
        report::build(&ReportInput {
            version,
            epoch: 0,
            aggregates: &aggregates,
            tallies: &tallies,
            assignments: &assignments,
            periods: &periods,
            epochs: &epochs,
            drift: None,
            pause_reason: None,
        })
    }

    /// The table, then the CSV.
    fn table_and_csv(report: &Report) -> String {
        format!("{}\n{}", super::table(report), report.to_csv())
    }

    fn check(actual: &str, expect: Expect) {
        expect.assert_eq(actual);
    }

    #[test]
    fn the_table_of_a_draft_with_no_data_says_not_started() {
        let draft = ExperimentVersion::created(spec(), T0);
        check(
            &table_and_csv(&report_of(&draft, 0, |_, _| (0.0, 0.0))),
            expect![[r#"
            support-ai · version 1 · draft, not started · epoch 0 · fixed allocation
            Not started: the experiment is a draft and no units are assigned yet.
            warning: Not enough data yet to compare every arm on minutes.
            arms: human 0 assigned (50% expected) · ai 0 assigned (50% expected)
            sample ratio: not judged (no units assigned yet)

            minutes (primary, duration, decrease is better)
              arm                         n         mean           sd
              human                       0            —            —
              ai                          0            —            —
              ai vs human: collecting (0 of 30 units per arm)  → collecting

            escalated (guardrail, binary, decrease is better)
              arm                         n         mean           sd
              human                       0            —            —
              ai                          0            —            —
              ai vs human: collecting (0 of 30 units per arm, 0 of 5 cases each way per arm)  → collecting

            power: minutes at mde +5.0% with 0 units per arm (not computed: the baseline needs at least 2 units, a non-zero mean and some spread)

            experiment,version,epoch,metric,kind,direction,role,arm,baseline,n_baseline,mean_baseline,sd_baseline,n_arm,mean_arm,sd_arm,verdict,decision_method,decision_test,decision_estimate,decision_ci_low,decision_ci_high,decision_p_value,decision_interval_level,absolute,absolute_ci_low,absolute_ci_high,relative,relative_ci_low,relative_ci_high,p_value,p_value_adjusted,chance_to_win,sequential_p_value,sequential_ci_low,sequential_ci_high
            support-ai,1,0,minutes,duration,decrease,primary,ai,human,0,,,0,,,collecting,,,,,,,,,,,,,,,,,,,
            support-ai,1,0,escalated,binary,decrease,guardrail,ai,human,0,,,0,,,collecting,,,,,,,,,,,,,,,,,,,
        "#]],
        );
    }

    #[test]
    fn the_table_of_a_running_experiment_with_no_data_says_collecting() {
        let running = ExperimentVersion::created(spec(), T0)
            .transitioned(Transition::Start, None, T0 + 60_000)
            .expect("start");
        check(
            &table_and_csv(&report_of(&running, 0, |_, _| (0.0, 0.0))),
            expect![[r#"
            support-ai · version 2 · running, no units assigned yet · epoch 0 · fixed allocation
            No units assigned yet, so there is nothing to compare.
            warning: Not enough data yet to compare every arm on minutes.
            arms: human 0 assigned (50% expected) · ai 0 assigned (50% expected)
            sample ratio: not judged (no units assigned yet)

            minutes (primary, duration, decrease is better)
              arm                         n         mean           sd
              human                       0            —            —
              ai                          0            —            —
              ai vs human: collecting (0 of 30 units per arm)  → collecting

            escalated (guardrail, binary, decrease is better)
              arm                         n         mean           sd
              human                       0            —            —
              ai                          0            —            —
              ai vs human: collecting (0 of 30 units per arm, 0 of 5 cases each way per arm)  → collecting

            power: minutes at mde +5.0% with 0 units per arm (not computed: the baseline needs at least 2 units, a non-zero mean and some spread)

            experiment,version,epoch,metric,kind,direction,role,arm,baseline,n_baseline,mean_baseline,sd_baseline,n_arm,mean_arm,sd_arm,verdict,decision_method,decision_test,decision_estimate,decision_ci_low,decision_ci_high,decision_p_value,decision_interval_level,absolute,absolute_ci_low,absolute_ci_high,relative,relative_ci_low,relative_ci_high,p_value,p_value_adjusted,chance_to_win,sequential_p_value,sequential_ci_low,sequential_ci_high
            support-ai,2,0,minutes,duration,decrease,primary,ai,human,0,,,0,,,collecting,,,,,,,,,,,,,,,,,,,
            support-ai,2,0,escalated,binary,decrease,guardrail,ai,human,0,,,0,,,collecting,,,,,,,,,,,,,,,,,,,
        "#]],
        );
    }

    #[test]
    fn the_table_of_an_experiment_with_data_shows_each_decision() {
        let running = ExperimentVersion::created(spec(), T0)
            .transitioned(Transition::Start, None, T0 + 60_000)
            .expect("start");
        let values = |arm: &str, i: u64| {
            let spread = f64::from(u32::try_from(i % 13).expect("small"));
            let minutes = if arm == "ai" { 22.0 } else { 30.0 } + spread;
            (minutes, if i % 10 == 0 { 1.0 } else { 0.0 })
        };
        check(
            &super::table(&report_of(&running, 200, values)),
            expect![[r#"
                support-ai · version 2 · running · epoch 0 · fixed allocation
                AI cuts minutes by 22% (always-valid 95% interval 18–26%); no clear harm to escalated (always-valid 90% interval −100% to +118%).
                arms: human 200 assigned (50% expected) · ai 200 assigned (50% expected)
                sample ratio: ok (chi² 0.00, p 1.0000)

                minutes (primary, duration, decrease is better)
                  arm                         n         mean           sd
                  human                     200         35.9        3.763
                  ai                        200         27.9        3.763
                  ai vs human: lift -22.3% [-26.1%, -18.4%] (always-valid 95%) p < 0.0001  → better
                    diagnostics:  abs -8.000 [-8.740, -7.260]  Welch p < 0.0001 (adj < 0.0001)  seq p < 0.0001  P(win) 100%

                escalated (guardrail, binary, decrease is better)
                  arm                         n         mean           sd
                  human                     200        0.100        0.301
                  ai                        200        0.100        0.301
                  ai vs human: lift +0.0% [-100.0%, +118.0%] (always-valid 90%, harm test) p 0.4999  → inconclusive
                    diagnostics:  abs 0.000 [-0.059, 0.059]  Welch p 1.0000 (adj 1.0000)  seq p 1.0000  P(win) 50%

                power: minutes at mde +5.0% with 200 units per arm: 61% (target 80%); 142 more units needed
                  Verdict already reached (better): the effect found, −22%, is larger than the 5.0% lift this power is for; more units would narrow its interval.
            "#]],
        );
    }

    #[test]
    fn the_command_line_is_well_formed() {
        // clap checks names, defaults and conflicts of every subcommand here, as debug builds
        // do on each run.
        crate::Cli::command().debug_assert();
    }
}
