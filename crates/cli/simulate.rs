//! `liftlab simulate`: its arguments, the scenario they name, and printing the lab's verdict on liftlab.

use std::path::PathBuf;

use clap::ValueEnum;
use liftlab_lab::scenario::Scenario;
use liftlab_lab::simulate::{render, simulate, SimulateOptions};

/// How `liftlab simulate` prints its verdict on liftlab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SimFormat {
    /// Truth beside what liftlab reported, for a person.
    Table,
    /// The same as JSON, for scripts and tests.
    Json,
}

/// Simulate a workflow experiment with a known truth and check what liftlab reports.
#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// The scenario file (format: api-spec/examples/scenarios/README.md).
    #[arg(value_name = "SCENARIO")]
    scenario: PathBuf,
    /// Drive this server (http://HOST:PORT) instead of one started in-process on a temporary data directory.
    #[arg(long)]
    server: Option<String>,
    /// API key for --server (made by `liftlab keys new`).
    #[arg(
        long,
        value_name = "API_KEY",
        env = "LIFTLAB_KEY",
        hide_env_values = true
    )]
    key: Option<String>,
    /// Seed of every random draw; the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run under this experiment key instead of the spec's (useful against a shared server).
    #[arg(long, value_name = "EXPERIMENT")]
    experiment: Option<String>,
    /// Simulate this many tasks instead of the scenario's number.
    #[arg(long)]
    tasks: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SimFormat::Table)]
    format: SimFormat,
    /// Assignment requests in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
}

/// Runs `liftlab simulate`.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let mut scenario = Scenario::load(&args.scenario)?;
    if let Some(key) = &args.experiment {
        scenario = scenario.renamed(key)?;
    }
    if let Some(tasks) = args.tasks {
        anyhow::ensure!(tasks >= 1, "--tasks must be at least 1");
        scenario.tasks = tasks;
    }
    let options = SimulateOptions {
        seed: args.seed,
        server: args.server,
        key: args.key,
        concurrency: usize::from(args.concurrency),
    };
    let result = simulate(&scenario, &options)?;
    match args.format {
        SimFormat::Json => println!("{}", serde_json::to_string_pretty(&result)?),
        SimFormat::Table => print!("{}", render(&result)),
    }
    Ok(())
}
