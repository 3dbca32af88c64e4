//! Subcommands that drive a running server: `apply`, `start`/`pause`/`stop`, `results` and `audit verify --server`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::ValueEnum;
use liftlab_domain::report::text::level;
use liftlab_domain::report::{
    ComparisonResult, DecisionTest, Interval, MetricResult, Report, Verdict,
};
use serde_json::Value;

use crate::client::{segment, Client, ServerArgs};

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

/// The lifecycle transitions `liftlab start|pause|stop` ask for.
#[derive(Clone, Copy, Debug)]
pub enum Transition {
    Start,
    Pause,
    Stop,
}

impl Transition {
    fn path(self) -> &'static str {
        match self {
            Transition::Start => "start",
            Transition::Pause => "pause",
            Transition::Stop => "stop",
        }
    }
}

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
                transition.path()
            ),
            &body,
        )
        .with_context(|| {
            format!(
                "cannot {} experiment {}",
                transition.path(),
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
        "<0.0001".to_string()
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
    line.push_str("\n    diagnostics:");
    if let Some(a) = &c.absolute {
        let _ = write!(line, "  abs {}", num_interval(a));
    }
    if let Some(pv) = c.p_value {
        let _ = write!(line, "  Welch p {}", p(pv));
    }
    if let Some(pa) = c.p_value_adjusted {
        let _ = write!(line, " (adj {})", p(pa));
    }
    if let Some(s) = &c.sequential {
        let _ = write!(line, "  seq p {}", p(s.p_value));
    }
    if let Some(b) = &c.bayes {
        let _ = write!(line, "  P(win) {:.0}%", b.chance_to_win * 100.0);
    }
    if let Some(note) = &c.note {
        let _ = write!(line, "  ({note})");
    }
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
    let _ = writeln!(
        out,
        "{} · version {} · {} · epoch {} · {} allocation",
        r.experiment, r.version, r.status, r.epoch, r.policy
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
    let _ = writeln!(
        out,
        "sample ratio: {} (chi² {:.2}, p {})",
        if r.srm.ok { "ok" } else { "MISMATCH" },
        r.srm.chi2,
        p(r.srm.p_value)
    );
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
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        // clap checks names, defaults and conflicts of every subcommand here, as debug builds
        // do on each run.
        crate::Cli::command().debug_assert();
    }
}
