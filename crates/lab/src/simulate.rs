//! The traffic simulator behind `liftlab simulate`: drives a scenario's workflow traffic through the real HTTP API and sets liftlab's answer beside the truth.
//!
//! Time is simulated: tasks arrive as a Poisson process, outcomes come back after the
//! scenario's delay, and every `tick_minutes` of simulated time the router posts the outcomes
//! that are due and then asks for the assignments of the tasks that arrive. Nothing sleeps, so
//! thousands of tasks take seconds. Assignments within a tick are sent concurrently (the
//! server's group commit shares their flushes); within a tick no outcome is recorded, so the
//! allocation cannot change and the run is reproducible for a given seed.
//!
//! Outcome timestamps (`ts`) follow the simulated clock, laid out in the past so that the last
//! one is the time the run starts (never later: the server refuses outcomes from the future),
//! and drift detections can be traced back to the task whose outcome triggered them.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use indicatif::ProgressBar;
use liftlab_domain::report::{Decision, Interval, Report, Verdict};
use liftlab_domain::spec::{Direction, MetricKind};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::client::{segment, Client};
use crate::local::LocalServer;
use crate::progress;
use crate::scenario::{Quantity, Scenario};

/// How to drive traffic.
pub struct DriveOptions<'a> {
    /// Seed of the run's generator.
    pub seed: u64,
    /// Prefix of unit, task and event ids (unique per run against a shared server).
    pub id_prefix: String,
    /// The scenario task index of the first task (drift and mix changes follow it).
    pub index_offset: usize,
    /// Tasks to send.
    pub tasks: usize,
    /// Assignment requests in flight at once.
    pub concurrency: usize,
    /// Unix milliseconds of the last outcome: the simulated history ends here, so no
    /// outcome is stamped later.
    pub clock_end_ms: i64,
    /// Sleep this long after each tick (the demo's live traffic); `None` runs flat out.
    pub pace: Option<Duration>,
    /// Stops the run at the next tick when set.
    pub stop: Option<&'a AtomicBool>,
    /// Advances by one per assigned task.
    pub progress: Option<&'a ProgressBar>,
}

/// One task as the server assigned it.
#[derive(Clone, Debug)]
pub struct TaskRecord {
    pub index: usize,
    pub arm: String,
    pub in_experiment: bool,
}

/// What a drive sent and what the server said.
#[derive(Debug, Default)]
pub struct DriveLog {
    pub tasks: Vec<TaskRecord>,
    pub accepted: u64,
    pub duplicates: u64,
    /// Outcome timestamp (Unix ms) → task index, to trace drift detections.
    pub ts_to_task: HashMap<i64, usize>,
    /// (Unix ms when the tick's assignments began, the first task index of the tick), in order,
    /// to tell which tasks were assigned after a re-baseline.
    pub ticks: Vec<(i64, usize)>,
}

/// A task waiting for its outcome.
struct Pending {
    index: usize,
    due_minutes: f64,
    event: Value,
}

/// Minutes of simulated time as Unix milliseconds after `start`.
pub fn at(start: i64, minutes: f64) -> i64 {
    // Simulated spans are at most a few years, far inside i64 milliseconds.
    start + (minutes * 60_000.0).round() as i64
}

/// Milliseconds as an RFC 3339 UTC timestamp.
fn rfc3339(ms: i64) -> String {
    liftlab_domain::report::format_ts(ms)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Sends the scenario's traffic: assignments, then outcomes after their delay.
pub fn drive(
    client: &Client,
    scenario: &Scenario,
    experiment: &str,
    options: &DriveOptions<'_>,
) -> anyhow::Result<DriveLog> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let interarrival =
        Exp::new(scenario.arrivals_per_minute).context("the arrival rate must be positive")?;
    // Arrivals, delays and segment attributes are drawn up front, in task order.
    let mut arrivals = Vec::with_capacity(options.tasks);
    let mut clock = 0.0;
    for i in 0..options.tasks {
        clock += interarrival.sample(&mut rng);
        let delay = scenario.outcome_delay_minutes.sample(&mut rng).max(0.0);
        let attributes = scenario.draw_attributes(&mut rng, options.index_offset + i);
        arrivals.push((clock, delay, attributes));
    }
    // Simulated minute 0 lies as far before the end as the last outcome lies after it.
    let last_due = arrivals
        .iter()
        .map(|(arrival, delay, _)| arrival + delay)
        .fold(0.0, f64::max);
    let clock_start_ms = options.clock_end_ms - at(0, last_due);
    let assign_path = format!("/v1/experiments/{}/assign", segment(experiment));
    let mut log = DriveLog::default();
    let mut pending: Vec<Pending> = Vec::new();
    let mut next = 0;
    let mut tick_start = 0.0;
    while next < arrivals.len() {
        if options.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        let tick_end = tick_start + scenario.tick_minutes;
        post_due(client, scenario, &mut pending, Some(tick_start), &mut log)?;
        let first = next;
        while next < arrivals.len() && arrivals[next].0 < tick_end {
            next += 1;
        }
        if first < next {
            let ids: Vec<String> = (first..next)
                .map(|i| format!("{}-{:07}", options.id_prefix, options.index_offset + i))
                .collect();
            log.ticks.push((now_ms(), options.index_offset + first));
            let answers = assign_all(
                client,
                scenario,
                &assign_path,
                &ids,
                &arrivals[first..next],
                options,
            )?;
            for (offset, answer) in answers.into_iter().enumerate() {
                let i = first + offset;
                let (arrival, delay, attributes) = &arrivals[i];
                let index = options.index_offset + i;
                let draw = scenario.draw(&mut rng, index, &answer.arm, attributes)?;
                let due = arrival + delay;
                let ts = at(clock_start_ms, due);
                log.ts_to_task.insert(ts, index);
                let mut metrics = Map::new();
                for (key, value) in &draw.metrics {
                    metrics.insert(key.clone(), metric_json(scenario, key, *value));
                }
                let mut event = json!({
                    "event_id": format!("{}-o", ids[offset]),
                    "experiment": experiment,
                    "task_id": ids[offset],
                    "ts": rfc3339(ts),
                    "metrics": metrics,
                    "handled_by": draw.handled_by,
                    "attributes": attributes,
                });
                if let (Some(v), Some(object)) = (&draw.model_version, event.as_object_mut()) {
                    object.insert("model_version".to_string(), Value::String(v.clone()));
                }
                pending.push(Pending {
                    index,
                    due_minutes: due,
                    event,
                });
                log.tasks.push(TaskRecord {
                    index,
                    arm: answer.arm,
                    in_experiment: answer.in_experiment,
                });
            }
            if let Some(bar) = options.progress {
                bar.inc(u64::try_from(next - first).unwrap_or(0));
            }
        }
        tick_start = tick_end;
        if let Some(pace) = options.pace {
            std::thread::sleep(pace);
        }
    }
    post_due(client, scenario, &mut pending, None, &mut log)?;
    Ok(log)
}

/// A metric value as JSON of the right type: a boolean for binary metrics, a whole number for counts.
fn metric_json(scenario: &Scenario, key: &str, value: f64) -> Value {
    match scenario.spec.metric(key).map(|m| m.kind()) {
        Some(MetricKind::Binary) => Value::Bool(value >= 0.5),
        // Poisson draws are whole numbers already; rounding only guards the wire format.
        Some(MetricKind::Count) => json!(value.max(0.0).round()),
        _ => json!(value),
    }
}

/// Posts the outcomes due by `until` (every pending one when `None`), oldest first, in batches.
fn post_due(
    client: &Client,
    scenario: &Scenario,
    pending: &mut Vec<Pending>,
    until: Option<f64>,
    log: &mut DriveLog,
) -> anyhow::Result<()> {
    pending.sort_by(|a, b| {
        a.due_minutes
            .total_cmp(&b.due_minutes)
            .then(a.index.cmp(&b.index))
    });
    let split = match until {
        Some(t) => pending.partition_point(|p| p.due_minutes <= t),
        None => pending.len(),
    };
    let due: Vec<Pending> = pending.drain(..split).collect();
    for batch in due.chunks(scenario.batch_size) {
        let events: Vec<&Value> = batch.iter().map(|p| &p.event).collect();
        let answer = client
            .post_json("/v1/outcomes", &json!({ "events": events }))
            .context("the server refused a batch of simulated outcomes")?;
        log.accepted += answer.get("accepted").and_then(Value::as_u64).unwrap_or(0);
        log.duplicates += answer
            .get("duplicates")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if let Some(first) = answer
            .get("rejected")
            .and_then(Value::as_array)
            .and_then(|r| r.first())
        {
            anyhow::bail!("the server rejected a simulated outcome: {first}");
        }
    }
    Ok(())
}

/// The server's answer to one assignment.
struct Answer {
    arm: String,
    in_experiment: bool,
}

/// Assigns a tick's tasks with up to `concurrency` requests in flight; answers in task order.
fn assign_all(
    client: &Client,
    scenario: &Scenario,
    path: &str,
    ids: &[String],
    arrivals: &[(f64, f64, BTreeMap<String, String>)],
    options: &DriveOptions<'_>,
) -> anyhow::Result<Vec<Answer>> {
    let workers = options.concurrency.clamp(1, ids.len().max(1));
    let chunk = ids.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = ids
            .chunks(chunk)
            .zip(arrivals.chunks(chunk))
            .map(|(ids, arrivals)| {
                scope.spawn(move || -> anyhow::Result<Vec<Answer>> {
                    ids.iter()
                        .zip(arrivals)
                        .map(|(id, (_, _, attributes))| {
                            let attributes = scenario.assignment_attributes(attributes);
                            let body =
                                json!({"unit_id": id, "task_id": id, "attributes": attributes});
                            let answer = client
                                .post_json(path, &body)
                                .with_context(|| format!("cannot assign task {id}"))?;
                            Ok(Answer {
                                arm: answer
                                    .get("arm")
                                    .and_then(Value::as_str)
                                    .context("the assignment has no arm")?
                                    .to_string(),
                                in_experiment: answer
                                    .get("in_experiment")
                                    .and_then(Value::as_bool)
                                    .unwrap_or(false),
                            })
                        })
                        .collect()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(ids.len());
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| anyhow::anyhow!("an assignment thread panicked"))??;
            all.extend(part);
        }
        Ok(all)
    })
}

/// What the truth says about one treatment-versus-baseline comparison.
#[derive(Debug, Serialize)]
pub struct Truth {
    pub baseline_mean: f64,
    pub arm_mean: f64,
    pub absolute: f64,
    pub relative: f64,
    /// `better`, `worse` or `none`, read through the metric's direction.
    pub effect: &'static str,
}

/// What liftlab reported about one comparison.
#[derive(Debug, Serialize)]
pub struct Reported {
    /// The decision every view shows (relative lift, its interval and the p-value the verdict reads).
    pub decision: Option<Decision>,
    pub relative: Option<Interval>,
    pub absolute: Option<Interval>,
    pub p_value: Option<f64>,
    pub p_value_adjusted: Option<f64>,
    pub sequential_p_value: Option<f64>,
    pub verdict: Verdict,
}

/// The truth beside liftlab's answer for one metric and treatment arm.
#[derive(Debug, Serialize)]
pub struct MetricCheck {
    pub metric: String,
    pub role: String,
    pub arm: String,
    pub baseline: String,
    pub truth: Option<Truth>,
    pub reported: Option<Reported>,
    /// Whether the decision interval contains the true relative lift.
    pub decision_covered: Option<bool>,
    /// Whether the reported relative interval contains the true relative lift.
    pub relative_covered: Option<bool>,
    /// Whether the reported absolute interval contains the true difference.
    pub absolute_covered: Option<bool>,
    /// `right`, `missed` (no verdict on a real effect), `false positive` or `wrong direction`.
    pub assessment: &'static str,
}

/// The primary metric within one segment value.
#[derive(Debug, Serialize)]
pub struct SegmentCheck {
    pub attribute: String,
    pub value: String,
    pub arm: String,
    pub true_relative: Option<f64>,
    pub reported_relative: Option<Interval>,
    pub covered: Option<bool>,
}

/// How a bandit did against the truth.
#[derive(Debug, Serialize)]
pub struct BanditCheck {
    pub reward: String,
    /// Σ over tasks in the experiment of (best arm's expected reward − served arm's).
    pub regret: f64,
    /// The same for uniform allocation (in expectation).
    pub uniform_regret: f64,
    /// Share of tasks served the arm that was truly best at the time.
    pub best_arm_share: f64,
    /// The truly best arm at the end of the run.
    pub best_arm: String,
    /// Tasks per arm.
    pub served: BTreeMap<String, u64>,
    /// The allocation weights of the last period liftlab opened.
    pub final_weights: BTreeMap<String, f64>,
}

/// A change of the truth and what liftlab noticed.
#[derive(Debug, Serialize)]
pub struct DriftCheck {
    /// The scenario's changes, described.
    pub truth: Vec<String>,
    /// Each detection liftlab reported, with the task whose outcome triggered it when known.
    pub reported: Vec<String>,
}

/// Everything a simulation found.
#[derive(Debug, Serialize)]
pub struct SimulationReport {
    pub scenario: String,
    pub description: Option<String>,
    pub experiment: String,
    pub seed: u64,
    pub server: String,
    pub tasks: usize,
    pub in_experiment: usize,
    /// The analysis epoch liftlab reported on (above 0 after a re-baseline).
    pub epoch: u64,
    /// The first task of that epoch; the truth is taken from it on.
    pub truth_from_task: usize,
    pub outcomes_accepted: u64,
    pub elapsed_seconds: f64,
    /// liftlab's one-sentence verdict.
    pub verdict: String,
    pub metrics: Vec<MetricCheck>,
    pub segments: Vec<SegmentCheck>,
    pub bandit: Option<BanditCheck>,
    pub drift: DriftCheck,
}

/// How `simulate` reaches a server and drives it.
#[derive(Clone, Debug)]
pub struct SimulateOptions {
    /// Seed of every random draw; the same seed gives the same run.
    pub seed: u64,
    /// Drive this server (http://HOST:PORT) instead of one started in-process on a temporary
    /// data directory.
    pub server: Option<String>,
    /// API key for `server`.
    pub key: Option<String>,
    /// Assignment requests in flight at once.
    pub concurrency: usize,
}

/// Creates and starts the scenario's experiment, drives its traffic, and sets the server's
/// results beside the scenario's truth.
pub fn simulate(
    scenario: &Scenario,
    options: &SimulateOptions,
) -> anyhow::Result<SimulationReport> {
    let mut local = None;
    let client = match &options.server {
        Some(url) => Client::new(url, options.key.clone())?,
        None => {
            let server = LocalServer::temporary()?;
            let client = Client::new(server.url(), None)?;
            local = Some(server);
            client
        }
    };
    let experiment = scenario.spec.key().to_string();
    let created = client.post_json("/v1/experiments", &scenario.spec_document);
    if let Err(e) = created {
        if e.status() == Some(409) {
            anyhow::bail!(
                "experiment {experiment} already exists on {}; pass --experiment NEW_KEY to simulate under another key",
                client.base()
            );
        }
        return Err(anyhow::Error::new(e).context(format!("cannot create experiment {experiment}")));
    }
    client
        .post_json(
            &format!("/v1/experiments/{}/start", segment(&experiment)),
            &json!({}),
        )
        .with_context(|| format!("cannot start experiment {experiment}"))?;
    let started = Instant::now();
    let bar = progress::bar(u64::try_from(scenario.tasks).unwrap_or(u64::MAX), "tasks");
    let drive_options = DriveOptions {
        seed: options.seed,
        id_prefix: format!("s{}", options.seed),
        index_offset: 0,
        tasks: scenario.tasks,
        concurrency: options.concurrency,
        clock_end_ms: now_ms(),
        pace: None,
        stop: None,
        progress: Some(&bar),
    };
    let log = drive(&client, scenario, &experiment, &drive_options)?;
    bar.finish_and_clear();
    let json = client
        .get_json(&format!("/v1/experiments/{}/results", segment(&experiment)))
        .with_context(|| format!("cannot get the results of {experiment}"))?;
    let report: Report = serde_json::from_value(json)
        .context("the server's results do not have the expected shape")?;
    let elapsed = started.elapsed().as_secs_f64();
    let server = options
        .server
        .clone()
        .unwrap_or_else(|| "in-process (temporary data directory)".to_string());
    let result = check(scenario, &log, &report, options.seed, server, elapsed);
    if let Some(mut server) = local {
        server.stop()?;
    }
    Ok(result)
}

/// Compares a run with the scenario's truth.
pub fn check(
    scenario: &Scenario,
    log: &DriveLog,
    report: &Report,
    seed: u64,
    server: String,
    elapsed: f64,
) -> SimulationReport {
    let n = scenario.tasks;
    // After a re-baseline the report covers the units assigned in the new epoch only, so the
    // truth is taken over the tasks assigned after it began.
    let epoch_start = report
        .epochs
        .iter()
        .find(|e| e.current && e.epoch > 0)
        .map(|e| e.started_at_ms);
    let from = epoch_start.map_or(0, |start| {
        log.ticks
            .iter()
            .find(|(at, _)| *at >= start)
            .map_or(n, |(_, first)| *first)
    });
    let in_experiment: Vec<&TaskRecord> = log
        .tasks
        .iter()
        .filter(|t| t.in_experiment && t.index >= from)
        .collect();
    let bandit = scenario.spec.allocation().thompson().is_some();
    // Under a bandit the arms see different stretches of time, so each arm's truth is the
    // mean of the per-task expectations of the tasks it served; otherwise the whole run's.
    let truth_of = |arm: &str, q: &Quantity| -> Option<f64> {
        if bandit {
            let served: Vec<usize> = in_experiment
                .iter()
                .filter(|t| t.arm == arm)
                .map(|t| t.index)
                .collect();
            if served.is_empty() {
                return scenario.truth(arm, q, from, n, None);
            }
            let sum: Option<f64> = served
                .iter()
                .map(|&i| scenario.truth(arm, q, i, i + 1, None))
                .sum();
            // Served counts are at most the task count, exact in f64.
            sum.map(|s| s / served.len() as f64)
        } else {
            scenario.truth(arm, q, from, n, None)
        }
    };
    // A metric's true mean per unit; a ratio metric's is its numerator's over its denominator's.
    let metric_truth = |arm: &str, key: &str| -> Option<f64> {
        let quantity = |k: &str| truth_of(arm, &scenario.quantity_of(k)?);
        match scenario.spec.metric(key)?.ratio() {
            Some(r) => {
                let (x, y) = (quantity(r.numerator())?, quantity(r.denominator())?);
                (y != 0.0).then(|| x / y)
            }
            None => quantity(key),
        }
    };
    let baseline = scenario.spec.baseline().key().to_string();
    let mut metrics = Vec::new();
    for metric in scenario.spec.metrics() {
        if metric.ratio().is_none() && scenario.quantity_of(metric.key()).is_none() {
            continue;
        }
        let reported_metric = report.metrics.iter().find(|m| m.key == metric.key());
        for arm in scenario.spec.treatments() {
            let truth = match (
                metric_truth(&baseline, metric.key()),
                metric_truth(arm.key(), metric.key()),
            ) {
                (Some(b), Some(t)) => {
                    let absolute = t - b;
                    let relative = if b == 0.0 {
                        f64::NAN
                    } else {
                        absolute / b.abs()
                    };
                    let effect = if absolute.abs() <= 1e-12 * b.abs().max(1.0) {
                        "none"
                    } else if (absolute < 0.0) == (metric.direction() == Direction::Decrease) {
                        "better"
                    } else {
                        "worse"
                    };
                    Some(Truth {
                        baseline_mean: b,
                        arm_mean: t,
                        absolute,
                        relative,
                        effect,
                    })
                }
                _ => None,
            };
            let comparison =
                reported_metric.and_then(|m| m.comparisons.iter().find(|c| c.arm == arm.key()));
            let reported = comparison.map(|c| Reported {
                decision: c.decision,
                relative: c.relative,
                absolute: c.absolute,
                p_value: c.p_value,
                p_value_adjusted: c.p_value_adjusted,
                sequential_p_value: c.sequential.map(|s| s.p_value),
                verdict: c.verdict,
            });
            let covers = |i: Option<Interval>, x: Option<f64>| match (i, x) {
                (Some(i), Some(x)) if x.is_finite() => Some(i.ci_low <= x && x <= i.ci_high),
                _ => None,
            };
            let decision_covered = covers(
                reported
                    .as_ref()
                    .and_then(|r| r.decision)
                    .map(|d| Interval {
                        estimate: d.estimate,
                        ci_low: d.ci_low,
                        ci_high: d.ci_high,
                    }),
                truth.as_ref().map(|t| t.relative),
            );
            let relative_covered = covers(
                reported.as_ref().and_then(|r| r.relative),
                truth.as_ref().map(|t| t.relative),
            );
            let absolute_covered = covers(
                reported.as_ref().and_then(|r| r.absolute),
                truth.as_ref().map(|t| t.absolute),
            );
            let assessment = match (&truth, &reported) {
                (Some(t), Some(r)) => assess(t.effect, r.verdict),
                _ => "n/a",
            };
            metrics.push(MetricCheck {
                metric: metric.key().to_string(),
                role: format!("{:?}", metric.role()).to_lowercase(),
                arm: arm.key().to_string(),
                baseline: baseline.clone(),
                truth,
                reported,
                decision_covered,
                relative_covered,
                absolute_covered,
                assessment,
            });
        }
    }
    SimulationReport {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        experiment: scenario.spec.key().to_string(),
        seed,
        server,
        tasks: log.tasks.len(),
        in_experiment: log.tasks.iter().filter(|t| t.in_experiment).count(),
        epoch: report.epoch,
        truth_from_task: from,
        outcomes_accepted: log.accepted,
        elapsed_seconds: elapsed,
        verdict: report.verdict.clone(),
        segments: segment_checks(scenario, report, from),
        bandit: bandit
            .then(|| bandit_check(scenario, &in_experiment, report))
            .flatten(),
        drift: drift_check(scenario, log, report),
        metrics,
    }
}

/// Judges a verdict against the true effect.
fn assess(effect: &str, verdict: Verdict) -> &'static str {
    match (effect, verdict) {
        ("none", Verdict::Inconclusive | Verdict::Collecting) => "right",
        ("none", _) => "false positive",
        ("better", Verdict::Better) | ("worse", Verdict::Worse) => "right",
        (_, Verdict::Inconclusive | Verdict::Collecting) => "missed",
        _ => "wrong direction",
    }
}

fn segment_checks(scenario: &Scenario, report: &Report, from: usize) -> Vec<SegmentCheck> {
    let primary = scenario.spec.primary().key();
    let Some(q) = scenario.quantity_of(primary) else {
        return Vec::new();
    };
    let baseline = scenario.spec.baseline().key();
    let n = scenario.tasks;
    let mut out = Vec::new();
    for segment in &scenario.segments {
        if !scenario.spec.segments().contains(&segment.attribute) {
            continue;
        }
        let breakdown = report
            .segments
            .iter()
            .find(|b| b.attribute == segment.attribute);
        for (value, _) in &segment.mix {
            let at = Some((segment.attribute.as_str(), value.as_str()));
            for arm in scenario.spec.treatments() {
                let true_relative = match (
                    scenario.truth(baseline, &q, from, n, at),
                    scenario.truth(arm.key(), &q, from, n, at),
                ) {
                    (Some(b), Some(t)) if b != 0.0 => Some((t - b) / b.abs()),
                    _ => None,
                };
                let reported_relative = breakdown
                    .and_then(|b| b.values.iter().find(|v| &v.value == value))
                    .and_then(|v| v.lifts.iter().find(|l| l.arm == arm.key()))
                    .and_then(|l| l.relative);
                let covered = match (reported_relative, true_relative) {
                    (Some(i), Some(x)) => Some(i.ci_low <= x && x <= i.ci_high),
                    _ => None,
                };
                out.push(SegmentCheck {
                    attribute: segment.attribute.clone(),
                    value: value.clone(),
                    arm: arm.key().to_string(),
                    true_relative,
                    reported_relative,
                    covered,
                });
            }
        }
    }
    out
}

fn bandit_check(
    scenario: &Scenario,
    tasks: &[&TaskRecord],
    report: &Report,
) -> Option<BanditCheck> {
    let settings = scenario.spec.allocation().thompson()?;
    let reward = settings.reward();
    let q = scenario.quantity_of(reward)?;
    let decrease = scenario.spec.metric(reward)?.direction() == Direction::Decrease;
    let arms: Vec<&str> = scenario.spec.arms().iter().map(|a| a.key()).collect();
    // "Better" reads through the reward's direction: for a decrease, smaller is better.
    let sign = if decrease { -1.0 } else { 1.0 };
    let (mut regret, mut uniform, mut best_served) = (0.0, 0.0, 0_u64);
    let mut served: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        let values: Vec<f64> = arms
            .iter()
            .map(|a| {
                scenario
                    .truth(a, &q, task.index, task.index + 1, None)
                    .map_or(f64::NAN, |v| sign * v)
            })
            .collect();
        let best = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // Arm counts are small, exact in f64.
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let arm = arms.iter().position(|a| *a == task.arm)?;
        regret += best - values[arm];
        uniform += best - mean;
        if values[arm] >= best {
            best_served += 1;
        }
        *served.entry(task.arm.clone()).or_default() += 1;
    }
    let last = scenario.tasks.saturating_sub(1);
    let best_arm = arms
        .iter()
        .map(|a| {
            (
                a,
                scenario
                    .truth(a, &q, last, last + 1, None)
                    .map_or(f64::NAN, |v| sign * v),
            )
        })
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .map(|(a, _)| (*a).to_string())
        .unwrap_or_default();
    let final_weights = report
        .allocation
        .last()
        .map(|p| p.weights.clone())
        .unwrap_or_default();
    let total = u64::try_from(tasks.len()).unwrap_or(u64::MAX).max(1);
    Some(BanditCheck {
        reward: reward.to_string(),
        regret,
        uniform_regret: uniform,
        // Counts are exact in f64.
        best_arm_share: best_served as f64 / total as f64,
        best_arm,
        served,
        final_weights,
    })
}

fn drift_check(scenario: &Scenario, log: &DriveLog, report: &Report) -> DriftCheck {
    let truth = scenario
        .drift
        .iter()
        .map(|d| {
            let factors: Vec<String> = serde_json::to_value(&d.multiply)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default()
                .iter()
                .map(|(p, f)| format!("{p} ×{f}"))
                .collect();
            let mut line = format!(
                "from task {}: {} {}",
                d.at_task,
                d.arm.as_deref().unwrap_or("every arm"),
                factors.join(", ")
            );
            if let Some(v) = &d.model_version {
                let _ = write!(line, " (model {v})");
            }
            line
        })
        .collect();
    let reported = report
        .drift
        .iter()
        .map(|d| {
            let task = log
                .ts_to_task
                .get(&d.detected_at_ms)
                .map_or_else(String::new, |i| format!(" at the outcome of task {i}"));
            format!(
                "{} in {} went {}{task} ({})",
                d.metric,
                d.arm,
                d.direction.as_str(),
                d.detector.as_str()
            )
        })
        .collect();
    DriftCheck { truth, reported }
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1}%", x * 100.0)
    } else {
        "n/a".to_string()
    }
}

fn pct_interval(i: &Interval) -> String {
    format!(
        "{} [{}, {}]",
        pct(i.estimate),
        pct(i.ci_low),
        pct(i.ci_high)
    )
}

fn yes_no(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "–",
    }
}

/// The table a person reads.
pub fn render(r: &SimulationReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "scenario {} · experiment {} · seed {}",
        r.scenario, r.experiment, r.seed
    );
    if let Some(d) = &r.description {
        let _ = writeln!(s, "{d}");
    }
    let _ = writeln!(
        s,
        "{} tasks ({} in the experiment), {} outcomes recorded, {:.1} s against {}",
        r.tasks, r.in_experiment, r.outcomes_accepted, r.elapsed_seconds, r.server
    );
    if r.epoch > 0 {
        let _ = writeln!(
            s,
            "liftlab re-baselined: the report covers epoch {}, the tasks from {} on; so does the truth",
            r.epoch, r.truth_from_task
        );
    }
    let _ = writeln!(s, "liftlab says: {}\n", r.verdict);
    let _ = writeln!(
        s,
        "{:<22} {:<14} {:>9}  {:<32} {:>8} {:<13} {:>7}  assessment",
        "metric", "arm", "truth", "reported lift [CI]", "p adj", "verdict", "covers"
    );
    for m in &r.metrics {
        let truth = m
            .truth
            .as_ref()
            .map_or("n/a".to_string(), |t| pct(t.relative));
        let (lift, p, verdict) = match &m.reported {
            Some(rep) => (
                rep.relative
                    .as_ref()
                    .map_or("n/a".to_string(), pct_interval),
                rep.p_value_adjusted
                    .or(rep.p_value)
                    .map_or("n/a".to_string(), |p| format!("{p:.4}")),
                rep.verdict.as_str(),
            ),
            None => ("not reported".to_string(), "–".to_string(), "–"),
        };
        let _ = writeln!(
            s,
            "{:<22} {:<14} {:>9}  {:<32} {:>8} {:<13} {:>7}  {}",
            m.metric,
            m.arm,
            truth,
            lift,
            p,
            verdict,
            yes_no(m.relative_covered),
            m.assessment
        );
    }
    if !r.segments.is_empty() {
        let _ = writeln!(s, "\nprimary metric by segment:");
        let width = r
            .segments
            .iter()
            .map(|g| g.attribute.chars().count() + g.value.chars().count() + 1)
            .max()
            .unwrap_or(0);
        for g in &r.segments {
            let _ = writeln!(
                s,
                "  {:<width$} {:<14} truth {:>8}  reported {:<32} covers {}",
                format!("{}={}", g.attribute, g.value),
                g.arm,
                g.true_relative.map_or("n/a".to_string(), pct),
                g.reported_relative
                    .as_ref()
                    .map_or("n/a".to_string(), pct_interval),
                yes_no(g.covered)
            );
        }
    }
    if let Some(b) = &r.bandit {
        let _ = writeln!(s, "\nbandit on {}:", b.reward);
        let _ = writeln!(
            s,
            "  regret {:.1} vs {:.1} for uniform allocation ({:.0}% of it); the truly best arm served {:.0}% of tasks",
            b.regret,
            b.uniform_regret,
            if b.uniform_regret > 0.0 { b.regret / b.uniform_regret * 100.0 } else { f64::NAN },
            b.best_arm_share * 100.0
        );
        let served: Vec<String> = b.served.iter().map(|(a, n)| format!("{a} {n}")).collect();
        let weights: Vec<String> = b
            .final_weights
            .iter()
            .map(|(a, w)| format!("{a} {:.0}%", w * 100.0))
            .collect();
        let _ = writeln!(
            s,
            "  best arm at the end: {}; served: {}; final weights: {}",
            b.best_arm,
            served.join(", "),
            weights.join(", ")
        );
    }
    if !r.drift.truth.is_empty() || !r.drift.reported.is_empty() {
        let _ = writeln!(s, "\ndrift:");
        for t in &r.drift.truth {
            let _ = writeln!(s, "  truth: {t}");
        }
        if r.drift.reported.is_empty() {
            let _ = writeln!(s, "  liftlab: no drift detected");
        }
        for d in &r.drift.reported {
            let _ = writeln!(s, "  liftlab: {d}");
        }
    }
    s
}
