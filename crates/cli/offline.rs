//! Subcommands on a data directory with no server running: `audit verify --data` and `rebuild`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use liftlab_store::{RebuildMode, SledStore, Store, StoreError};

use crate::client::ServerArgs;
use crate::progress;

/// The data directory `serve` and `rebuild` use when `--data` is not given.
pub const DEFAULT_DATA: &str = "./liftlab-data";

/// Check the tamper-evident audit chain.
#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk the SHA-256 audit chain and name the first record that was edited, deleted or
    /// moved; exit 1 when it does not verify.
    Verify(VerifyArgs),
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Verify a data directory directly (the server must not be running on it).
    #[arg(long, value_name = "DIR", conflicts_with = "server")]
    data: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Recompute every aggregate from the outcome log and report any mismatch with the live state.
#[derive(clap::Args, Debug)]
pub struct RebuildArgs {
    /// The data directory (the server must not be running on it).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    /// Replace the live unit rows, aggregates and counters with the rebuilt ones.
    #[arg(long)]
    repair: bool,
}

/// Runs an `audit` subcommand.
pub fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify(args) => match &args.data {
            Some(dir) => verify_offline(dir),
            None => crate::remote::verify_remote(&args.server),
        },
    }
}

/// Opens the store of an existing data directory, with advice when another process holds it.
fn open(dir: &Path) -> anyhow::Result<SledStore> {
    if !dir.is_dir() {
        anyhow::bail!(
            "{} is not a liftlab data directory (it does not exist)",
            dir.display()
        );
    }
    SledStore::open(dir).map_err(|e| match e {
        StoreError::Locked { .. } => anyhow::anyhow!(
            "{e}; stop the server first, or ask it with `liftlab audit verify --server URL`"
        ),
        other => {
            anyhow::Error::new(other).context(format!("cannot open the store in {}", dir.display()))
        }
    })
}

fn verify_offline(dir: &Path) -> anyhow::Result<()> {
    let store = open(dir)?;
    let spinner = progress::spinner("verifying the audit chain");
    let report = store.verify();
    spinner.finish_and_clear();
    let report = report.context("cannot read the audit chain")?;
    store.close().context("cannot close the store")?;
    if report.ok {
        println!("audit chain ok: {} records verified", report.records);
        return Ok(());
    }
    let first_bad = report
        .first_bad
        .map_or_else(|| "?".to_string(), |n| n.to_string());
    anyhow::bail!(
        "audit chain broken at record {first_bad} ({} records verified before it): {}",
        report.records,
        report.reason.as_deref().unwrap_or("no reason given")
    )
}

/// Runs `liftlab rebuild`: exits 1 when mismatches were found and not repaired.
pub fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    let store = open(&args.data)?;
    let mode = if args.repair {
        RebuildMode::Replace
    } else {
        RebuildMode::Check
    };
    let spinner = progress::spinner("replaying the outcome log");
    let report = store.rebuild(mode);
    spinner.finish_and_clear();
    let report = report.context("cannot rebuild from the log")?;
    store.close().context("cannot close the store")?;
    println!(
        "replayed {} outcomes and recounted {} assignments of {} experiments",
        report.outcomes, report.assignments, report.experiments
    );
    if report.mismatches.is_empty() {
        println!("no mismatch: the live aggregates equal the ones rebuilt from the log");
        return Ok(());
    }
    for m in &report.mismatches {
        println!(
            "mismatch in {} {} {}: live {} vs rebuilt {}",
            m.experiment, m.table, m.entry, m.live, m.rebuilt
        );
    }
    if report.replaced {
        println!(
            "{} mismatches repaired: the live state now equals the log",
            report.mismatches.len()
        );
        return Ok(());
    }
    anyhow::bail!(
        "{} mismatches between the live state and the log; run again with --repair to replace the live state",
        report.mismatches.len()
    )
}
