//! Subcommands on a data directory with no server running: `audit verify --data`, `audit export` and `rebuild`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use liftlab_lab::progress;
use liftlab_store::{RebuildMode, SledStore, Store, StoreError};

use crate::connect::ServerArgs;

/// The data directory `serve` and `rebuild` use when `--data` is not given.
pub const DEFAULT_DATA: &str = "./liftlab-data";

/// Check the tamper-evident audit chain.
#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk the SHA-256 audit chain and name the first record that was edited, deleted or
    /// moved; exit 1 when it does not verify.
    Verify(VerifyArgs),
    /// Write the audit chain as JSON Lines, one record a line in chain order, for auditors.
    ///
    /// Each line has `seq`, `prev_hash`, `kind`, `experiment`, `payload` (the event as the
    /// exact JSON text that was hashed), `ts` (milliseconds since the Unix epoch) and `hash`.
    /// A record's hash is SHA-256 over the previous record's hash (32 bytes; zeros before the
    /// first), `seq` (8 bytes big-endian), then `kind`, `experiment` and `payload`, each as a
    /// 4-byte big-endian length and its UTF-8 bytes, then `ts` (8 bytes big-endian, signed).
    Export(ExportArgs),
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The data directory (the server must not be running on it).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA)]
    data: PathBuf,
    /// Only the records of this experiment (the chain's hashes still link across all of them).
    #[arg(long, value_name = "EXPERIMENT")]
    experiment: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
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
        AuditCommand::Export(args) => export(&args),
    }
}

/// Runs `liftlab audit export`.
fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let store = open(&args.data)?;
    let written = match &args.out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let n = write_log(&store, args.experiment.as_deref(), &mut out)?;
            out.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {n} audit records to {}", path.display());
            n
        }
        None => write_log(
            &store,
            args.experiment.as_deref(),
            &mut std::io::stdout().lock(),
        )?,
    };
    store.close().context("cannot close the store")?;
    if written == 0 {
        if let Some(key) = &args.experiment {
            store
                .experiment(key)
                .with_context(|| format!("cannot export experiment {key}"))?;
        }
    }
    Ok(())
}

/// Writes the chain (or one experiment's records of it) as JSON Lines; returns the count.
fn write_log(
    store: &SledStore,
    experiment: Option<&str>,
    out: &mut impl std::io::Write,
) -> anyhow::Result<u64> {
    let mut after = 0;
    let mut written = 0;
    loop {
        let page = store
            .audit_log(after, liftlab_store::MAX_AUDIT_PAGE)
            .context("cannot read the audit chain")?;
        let Some(last) = page.last() else {
            return Ok(written);
        };
        after = last.seq;
        for record in page
            .iter()
            .filter(|r| experiment.map_or(true, |key| r.experiment == key))
        {
            serde_json::to_writer(&mut *out, record).context("cannot write a record")?;
            out.write_all(b"\n").context("cannot write a record")?;
            written += 1;
        }
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
    SledStore::open(dir).map_err(|e| open_error(dir, e))
}

fn open_error(dir: &Path, e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Locked { .. } => anyhow::anyhow!(
            "{e}; stop the server first, or ask it with `liftlab audit verify --server URL`"
        ),
        other => {
            anyhow::Error::new(other).context(format!("cannot open the store in {}", dir.display()))
        }
    }
}

fn verify_offline(dir: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return open(dir).map(|_| ());
    }
    let spinner = progress::spinner("verifying the audit chain");
    let report = match SledStore::open(dir) {
        Ok(store) => {
            let report = store.verify();
            store.close().context("cannot close the store")?;
            report
        }
        // A log the store refuses to open is still walked, to name its first bad record.
        Err(StoreError::Corrupt { .. }) => SledStore::verify_dir(dir),
        Err(e) => {
            spinner.finish_and_clear();
            return Err(open_error(dir, e));
        }
    };
    spinner.finish_and_clear();
    let report = report.context("cannot read the audit chain")?;
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
