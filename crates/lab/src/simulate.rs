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
//!
//! This file drives the traffic; `check.rs` sets the run beside the truth and `render.rs`
//! prints the result.

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

mod check;
mod render;
pub use check::{
    check, BanditCheck, DriftCheck, MetricCheck, Reported, SegmentCheck, SimulationReport, Truth,
};
pub use render::render;

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
