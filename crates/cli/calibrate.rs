//! `liftlab calibrate`: its arguments, and writing the report the lab's calibration produces.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::ValueEnum;
use liftlab_lab::calibrate::{calibrate, markdown};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A Markdown report with tables (docs/CALIBRATION.md).
    Markdown,
    /// The figures as JSON, for scripts and tests.
    Json,
}

/// Measure liftlab's statistical guarantees by seeded Monte Carlo simulation.
#[derive(clap::Args, Debug)]
pub struct CalibrateArgs {
    /// Runs of each frequentist study (A/A, coverage, peeking, power, the decision); use ≥ 2000 for the report.
    #[arg(long, default_value_t = 2000)]
    runs: u64,
    /// Seeds of each Thompson-sampling study (5,000 tasks each); use ≥ 200 for the report.
    #[arg(long, default_value_t = 200)]
    bandit_runs: u64,
    /// Runs of the drift study (10,000 stationary events and one 30% shift each).
    #[arg(long, default_value_t = 500)]
    drift_runs: u64,
    /// The master seed; every run's generator is derived from it.
    #[arg(long, default_value_t = 20_261_126)]
    seed: u64,
    /// Write the report to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    format: Format,
    /// Worker threads (default: the available parallelism).
    #[arg(long)]
    threads: Option<usize>,
}

/// Runs `liftlab calibrate`.
pub fn run(args: CalibrateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.runs >= 10, "--runs must be at least 10");
    anyhow::ensure!(args.bandit_runs >= 2, "--bandit-runs must be at least 2");
    anyhow::ensure!(args.drift_runs >= 2, "--drift-runs must be at least 2");
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    let calibration = calibrate(
        args.seed,
        args.runs,
        args.bandit_runs,
        args.drift_runs,
        threads,
    )?;
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&calibration)? + "\n",
        Format::Markdown => markdown(&calibration, &command_line(&args)),
    };
    match &args.out {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    let missed: Vec<&str> = calibration
        .figures
        .iter()
        .filter(|f| f.met == Some(false))
        .map(|f| f.id)
        .collect();
    if !missed.is_empty() {
        eprintln!("targets missed: {}", missed.join(", "));
    }
    Ok(())
}

fn command_line(args: &CalibrateArgs) -> String {
    let mut line = format!(
        "liftlab calibrate --runs {} --bandit-runs {} --drift-runs {} --seed {}",
        args.runs, args.bandit_runs, args.drift_runs, args.seed
    );
    if let Some(out) = &args.out {
        let _ = write!(line, " --out {}", out.display());
    }
    line
}
