//! `liftlab demo`: serves the example experiments with simulated workflow traffic flowing through the real API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use liftlab_lab::client::{segment, ApiError, Client};
use liftlab_lab::local::LocalServer;
use liftlab_lab::scenario::Scenario;
use liftlab_lab::simulate::{drive, now_ms, DriveOptions};
use serde_json::{json, Value};

use crate::remote::apply_spec;

/// Serve the example experiments with simulated traffic, for a first look at liftlab.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Address to serve on (loopback only: the demo has no API keys).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Data directory (created when missing; kept between runs).
    #[arg(long, default_value = "./liftlab-demo-data")]
    data: PathBuf,
    /// Directory of example specs (default: api-spec/examples under the working directory,
    /// else the one in liftlab's source tree).
    #[arg(long, value_name = "DIR")]
    examples: Option<PathBuf>,
    /// Tasks per experiment sent at start, so the pages fill at once.
    #[arg(long, default_value_t = 3000)]
    backfill: usize,
    /// Tasks per experiment per second afterwards (0 stops the traffic after the backfill).
    #[arg(long, default_value_t = 2)]
    rate: usize,
}

/// The examples directory: the given one, `./api-spec/examples`, or the source tree's.
fn examples_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        anyhow::ensure!(
            dir.is_dir(),
            "{} is not a directory of example specs",
            dir.display()
        );
        return Ok(dir.to_path_buf());
    }
    let here = PathBuf::from("api-spec/examples");
    if here.is_dir() {
        return Ok(here);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("api-spec/examples");
    anyhow::ensure!(
        built.is_dir(),
        "no example specs found: neither ./api-spec/examples nor {} exists; pass --examples DIR",
        built.display()
    );
    Ok(built)
}

/// The JSON files of a directory, sorted by name.
fn json_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// The scenario that drives an example: one marked `"demo": true` whose spec is that file,
/// else generic traffic for the spec.
fn scenario_for(
    example: &Path,
    spec: Value,
    scenarios: &[Scenario],
    backfill: usize,
) -> anyhow::Result<Scenario> {
    let wanted = std::fs::canonicalize(example).ok();
    let found = scenarios.iter().find(|s| {
        s.demo
            && s.spec_path
                .as_ref()
                .and_then(|p| std::fs::canonicalize(p).ok())
                .is_some_and(|p| Some(p) == wanted)
    });
    match found {
        Some(s) => Ok(s.clone()),
        None => Scenario::generic(spec, backfill.max(1)),
    }
}

/// Runs `liftlab demo` until Ctrl-C.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    init_logging();
    let dir = examples_dir(args.examples.as_deref())?;
    let scenario_dir = dir.join("scenarios");
    let mut scenarios = Vec::new();
    if scenario_dir.is_dir() {
        for file in json_files(&scenario_dir)? {
            match Scenario::load(&file) {
                Ok(s) => scenarios.push(s),
                Err(e) => eprintln!("skipping scenario {}: {e:#}", file.display()),
            }
        }
    }
    let mut experiments = Vec::new();
    for file in json_files(&dir)? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let spec: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("skipping {}: not valid JSON ({e})", file.display());
                continue;
            }
        };
        match scenario_for(&file, spec.clone(), &scenarios, args.backfill) {
            Ok(scenario) => experiments.push((spec, scenario)),
            Err(e) => eprintln!("skipping {}: {e:#}", file.display()),
        }
    }
    anyhow::ensure!(
        !experiments.is_empty(),
        "no usable example specs in {}",
        dir.display()
    );

    let mut server = LocalServer::start(args.addr, &args.data, true)?;
    let client = Client::new(server.url(), None)?;
    println!(
        "liftlab demo: serving {} example experiments",
        experiments.len()
    );
    for (spec, scenario) in &experiments {
        let key = scenario.spec.key();
        match prepare(&client, spec) {
            Ok(status) => println!("  {key}: {status} — {}/experiments/{key}", server.url()),
            Err(e) => eprintln!("  {key}: {e:#}"),
        }
    }
    println!(
        "\nOpen {}/ in a browser (data in {}; Ctrl-C to stop).",
        server.url(),
        args.data.display()
    );
    println!("Simulated workflow traffic is flowing; the pages fill within seconds.");

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = Arc::clone(&stop);
        let client = client.clone();
        std::thread::Builder::new()
            .name("liftlab-demo-traffic".to_string())
            .spawn(move || {
                if let Err(e) = traffic(&client, &experiments, args.backfill, args.rate, &stop) {
                    // The server is in this process: it only becomes unreachable when it
                    // shuts down, which is no news.
                    let shutting_down = e.chain().any(|c| {
                        matches!(
                            c.downcast_ref::<ApiError>(),
                            Some(ApiError::Transport { .. })
                        )
                    });
                    if !shutting_down && !stop.load(Ordering::Relaxed) {
                        eprintln!("demo traffic stopped: {e:#}");
                    }
                }
            })
            .context("cannot start the traffic thread")?
    };
    let served = server.wait();
    stop.store(true, Ordering::Relaxed);
    // The traffic thread notices the flag at its next tick; it does not hold the store.
    drop(traffic);
    served
}

/// Creates (or updates) an example experiment and starts it; returns its status.
fn prepare(client: &Client, spec: &Value) -> anyhow::Result<String> {
    let key = spec
        .get("key")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let current = match apply_spec(client, spec) {
        Ok((_, version)) => version,
        // A running experiment may refuse some spec changes: keep what is stored.
        Err(e) => {
            eprintln!("  {key}: keeping the stored spec ({e:#})");
            client.get_json(&format!("/v1/experiments/{}", segment(&key)))?
        }
    };
    let status = current
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if status == "draft" || status == "paused" {
        let started = client.post_json(
            &format!("/v1/experiments/{}/start", segment(&key)),
            &json!({}),
        )?;
        return Ok(started
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("running")
            .to_string());
    }
    Ok(status.to_string())
}

/// Backfills every experiment, then keeps a trickle of live traffic going until `stop`.
fn traffic(
    client: &Client,
    experiments: &[(Value, Scenario)],
    backfill: usize,
    rate: usize,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    // A fresh prefix per demo run keeps ids unique in a data directory that outlives the run.
    let run = format!("demo{:x}", now_ms());
    for (i, (_, scenario)) in experiments.iter().enumerate() {
        if backfill == 0 || stop.load(Ordering::Relaxed) {
            break;
        }
        let key = scenario.spec.key();
        let options = DriveOptions {
            seed: now_ms()
                .unsigned_abs()
                .wrapping_add(u64::try_from(i).unwrap_or(0)),
            id_prefix: format!("{run}-{i}"),
            index_offset: 0,
            tasks: backfill,
            concurrency: 8,
            clock_end_ms: now_ms(),
            pace: None,
            stop: Some(stop),
            progress: None,
        };
        drive(client, scenario, key, &options).with_context(|| format!("traffic for {key}"))?;
    }
    if rate == 0 {
        return Ok(());
    }
    let mut round: usize = 0;
    while !stop.load(Ordering::Relaxed) {
        for (i, (_, scenario)) in experiments.iter().enumerate() {
            let key = scenario.spec.key();
            let options = DriveOptions {
                seed: now_ms()
                    .unsigned_abs()
                    .wrapping_add(u64::try_from(i).unwrap_or(0)),
                id_prefix: format!("{run}-{i}-live{round}"),
                // Live traffic continues after the scenario's changes, in its final regime.
                index_offset: scenario.tasks.max(backfill),
                tasks: rate,
                concurrency: 2,
                // Each round's short history ends now, like the backfill's.
                clock_end_ms: now_ms(),
                pace: None,
                stop: Some(stop),
                progress: None,
            };
            drive(client, scenario, key, &options)
                .with_context(|| format!("live traffic for {key}"))?;
        }
        round += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
