//! Subcommands on a store with no server needed: `audit verify --data`/`--store`, `audit export`, `rebuild` and `migrate`, and the `--store` option they share with `serve`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use liftlab_lab::progress;
use liftlab_store::{RebuildMode, SledStore, Store, StoreError};
use liftlab_store_pg::PgStore;

use crate::connect::ServerArgs;

/// The data directory `serve` and `rebuild` use when `--data` is not given.
pub const DEFAULT_DATA: &str = "./liftlab-data";

/// `--store URL` (or `LIFTLAB_STORE`): a PostgreSQL database instead of the data directory.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StoreArg {
    /// A PostgreSQL database (postgres://USER:PASSWORD@HOST:PORT/DB) to use instead of
    /// --data; several `liftlab serve` replicas may share it, and other commands may run
    /// while they do. The schema is created or migrated on first use.
    #[arg(long = "store", env = "LIFTLAB_STORE", value_name = "URL", value_parser = parse_store_url)]
    pub url: Option<String>,
}

fn parse_store_url(s: &str) -> Result<String, String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(s.to_string())
    } else {
        Err("expected a PostgreSQL URL, postgres://USER:PASSWORD@HOST:PORT/DB (use --data DIR for the embedded store)".to_string())
    }
}

/// Opens the PostgreSQL store at `url` (migrating its schema).
pub fn open_pg(url: &str) -> anyhow::Result<PgStore> {
    PgStore::open(url).context("cannot open the PostgreSQL store given by --store")
}

/// The store a command works on: `--store URL` when given, else the data directory.
fn open_any(store: &StoreArg, dir: &Path) -> anyhow::Result<Box<dyn Store>> {
    Ok(match &store.url {
        Some(url) => Box::new(open_pg(url)?),
        None => Box::new(open(dir)?),
    })
}

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
    #[command(flatten)]
    store: StoreArg,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Verify a data directory directly (the server must not be running on it).
    #[arg(long, value_name = "DIR", conflicts_with = "server")]
    data: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArg,
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
    #[command(flatten)]
    store: StoreArg,
}

/// Runs an `audit` subcommand.
pub fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify(args) => match (&args.store.url, &args.data) {
            (Some(url), _) => verify_store(&open_pg(url)?),
            (None, Some(dir)) => verify_offline(dir),
            (None, None) => crate::remote::verify_remote(&args.server),
        },
        AuditCommand::Export(args) => export(&args),
    }
}

/// Runs `liftlab audit export`.
fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let store = open_any(&args.store, &args.data)?;
    let store = store.as_ref();
    let written = match &args.out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let n = write_log(store, args.experiment.as_deref(), &mut out)?;
            out.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {n} audit records to {}", path.display());
            n
        }
        None => write_log(
            store,
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
    store: &dyn Store,
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

/// Verifies a PostgreSQL store's chain.
fn verify_store(store: &dyn Store) -> anyhow::Result<()> {
    let spinner = progress::spinner("verifying the audit chain");
    let report = store.verify();
    spinner.finish_and_clear();
    let report = report.context("cannot read the audit chain")?;
    store.close().context("cannot close the store")?;
    print_verify(report)
}

/// Verifies a data directory's log; a log the store refuses to open is still walked, to name
/// its first bad record.
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
        Err(StoreError::Corrupt { .. }) => SledStore::verify_dir(dir),
        Err(e) => {
            spinner.finish_and_clear();
            return Err(open_error(dir, e));
        }
    };
    spinner.finish_and_clear();
    print_verify(report.context("cannot read the audit chain")?)
}

fn print_verify(report: liftlab_store::VerifyReport) -> anyhow::Result<()> {
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

/// Move a data directory of the older layout to the log-and-views layout (`--data DIR`), or
/// copy a data directory into an empty PostgreSQL database (`--from DIR --to URL`).
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["data", "from"])))]
pub struct MigrateArgs {
    /// A data directory written by liftlab before the store became one log: migrated in place,
    /// the old files kept beside it as DIR.schema7 (the server must not be running on it).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["from", "to"])]
    data: Option<PathBuf>,
    /// The data directory to copy (the server must not be running on it; it is not changed).
    #[arg(long, value_name = "SOURCE_DIR", requires = "to")]
    from: Option<PathBuf>,
    /// The PostgreSQL database to copy into (postgres://USER:PASSWORD@HOST:PORT/DB); it must
    /// hold no liftlab data yet.
    #[arg(long, value_name = "URL", value_parser = parse_store_url, requires = "from")]
    to: Option<String>,
}

/// Runs `liftlab migrate`: in place for an older data directory; otherwise copies everything
/// into PostgreSQL in one transaction, then checks the copy.
pub fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let (from, to) = match (args.data, args.from, args.to) {
        (Some(dir), _, _) => return migrate_layout(&dir),
        (None, Some(from), Some(to)) => (from, to),
        _ => anyhow::bail!("give --data DIR, or --from DIR and --to URL"),
    };
    let src = open(&from)?;
    let dst = open_pg(&to)?;
    let spinner = progress::spinner("copying the data directory");
    let copied = dst.import(&src);
    spinner.finish_and_clear();
    let report = copied.context("cannot copy the data directory")?;
    src.close().context("cannot close the data directory")?;
    println!(
        "copied {} experiments, {} assignments, {} outcomes and {} audit records",
        report.experiments, report.assignments, report.outcomes, report.audit_records
    );
    let verified = dst.verify().context("cannot read the copied audit chain")?;
    let rebuilt = dst
        .rebuild(RebuildMode::Check)
        .context("cannot check the copied aggregates")?;
    dst.close().context("cannot close the database")?;
    if !verified.ok || !rebuilt.mismatches.is_empty() {
        anyhow::bail!(
            "the copy does not check out: audit chain ok = {}, {} mismatches between its aggregates and its outcome log",
            verified.ok,
            rebuilt.mismatches.len()
        );
    }
    println!(
        "the copy checks out: audit chain ok ({} records), aggregates equal the outcome log",
        verified.records
    );
    Ok(())
}

/// `liftlab migrate --data DIR`: the older layout's audit chain, verified, becomes the new
/// log, and every view is folded from it.
fn migrate_layout(dir: &Path) -> anyhow::Result<()> {
    let spinner = progress::spinner("migrating the data directory");
    let migrated = liftlab_store::legacy::migrate(dir);
    spinner.finish_and_clear();
    let migrated = migrated.map_err(|e| open_error(dir, e))?;
    println!(
        "migrated {}: {} records of the audit chain are the new log, verified; the old files are in {} (delete them once the server runs on the new layout)",
        dir.display(),
        migrated.records,
        migrated.backup.display()
    );
    Ok(())
}

/// Runs `liftlab rebuild`: exits 1 when mismatches were found and not repaired.
pub fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    let store = open_any(&args.store, &args.data)?;
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
