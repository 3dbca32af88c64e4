//! The `liftlab` binary: serve, demo, spec validate, apply, results, simulate, audit verify and export.

mod calibrate;
mod connect;
mod demo;
mod offline;
mod remote;
mod simulate;
mod spec_cmd;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand, ValueEnum};
use liftlab_server::{AppState, CachedStore, Config, KeyEntry, KeyRing, Role, ServeOptions};

/// mimalloc instead of the system allocator: sled copies a tree node on every insert, and the
/// store's writer thread spent about a third of its time in glibc's malloc and free.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "liftlab",
    version,
    about = "Experimentation platform for AI workflows"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and result pages on the embedded store (or on PostgreSQL with --store).
    Serve(ServeArgs),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Measure the statistics' guarantees (false positives, coverage, power, bandits, drift) by simulation.
    Calibrate(calibrate::CalibrateArgs),
    /// Serve the example experiments with simulated workflow traffic (open the printed URL).
    Demo(demo::DemoArgs),
    /// Work with experiment spec files.
    Spec {
        #[command(subcommand)]
        command: spec_cmd::SpecCommand,
    },
    /// Create an experiment from a spec file, or replace its spec (a new version) when it exists.
    Apply(remote::ApplyArgs),
    /// Start an experiment (draft or paused → running).
    Start(remote::LifecycleArgs),
    /// Pause a running experiment (assignments fall back to the baseline).
    Pause(remote::LifecycleArgs),
    /// Stop an experiment for good.
    Stop(remote::LifecycleArgs),
    /// Show an experiment's results as a table, JSON or CSV.
    Results(remote::ResultsArgs),
    /// Check the tamper-evident audit chain.
    Audit {
        #[command(subcommand)]
        command: offline::AuditCommand,
    },
    /// Recompute every aggregate from the outcome log and report any mismatch.
    Rebuild(offline::RebuildArgs),
    /// Move an older data directory to the current layout (--data), or copy a data directory into an empty PostgreSQL database (--from, --to).
    Migrate(offline::MigrateArgs),
    /// Drive a scenario with a known truth through the real API and compare liftlab's answer with it.
    Simulate(simulate::SimulateArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Directory of the embedded store (created when missing).
    #[arg(long, value_name = "DIR", default_value = offline::DEFAULT_DATA)]
    data: PathBuf,
    #[command(flatten)]
    store: offline::StoreArg,
    /// API keys file, one `ROLE SHA256_HEX NAME` a line; without it the API is open (loopback only).
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Log line format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Largest JSON request body (e.g. 1MiB, 512KiB, 2000000).
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    json_limit: usize,
    /// Largest NDJSON outcome stream.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    ndjson_limit: usize,
    /// HTTP worker threads (default: one per physical core).
    #[arg(long)]
    workers: Option<usize>,
    /// The store's page cache (e.g. 256MiB, 1GiB); resident memory is larger than the cache alone.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    cache_size: usize,
    /// Per-client request rate (per API key, or per address without one), e.g. 100/s, 6000/m; refused requests get 429 with Retry-After.
    #[arg(long, value_name = "RATE")]
    rate_limit: Option<liftlab_server::Rate>,
    /// Requests a client may send at once before the rate applies (default: the rate's count).
    #[arg(long, value_name = "N", requires = "rate_limit")]
    burst: Option<std::num::NonZeroU32>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a fresh random key once, and the keys-file line that admits it.
    New {
        /// viewer, router, scientist or admin.
        #[arg(value_parser = parse_role)]
        role: Role,
        /// A name for the key's holder (no spaces), shown in logs and 403 messages.
        name: String,
    },
}

/// Runs the command; an error is printed as one line (its causes joined by `: `), never with a
/// stack trace, even when `RUST_BACKTRACE` is set: a user error is not a crash.
fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Keys {
            command: KeysCommand::New { role, name },
        } => keys_new(role, &name),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Spec { command } => spec_cmd::run(command),
        Command::Apply(args) => remote::apply(args),
        Command::Start(args) => remote::lifecycle(remote::Transition::Start, args),
        Command::Pause(args) => remote::lifecycle(remote::Transition::Pause, args),
        Command::Stop(args) => remote::lifecycle(remote::Transition::Stop, args),
        Command::Results(args) => remote::results(args),
        Command::Audit { command } => offline::audit(command),
        Command::Rebuild(args) => offline::rebuild(args),
        Command::Migrate(args) => offline::migrate(args),
        Command::Simulate(args) => simulate::run(args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let keys = match &args.keys {
        Some(path) => load_keys(path)?,
        None => KeyRing::open(),
    };
    if keys.is_open() {
        if !is_loopback(args.addr.ip()) {
            bail!(
                "refusing to serve on {} without --keys: an open server may only bind a loopback address (127.0.0.1 or ::1); make a key with `liftlab keys new admin NAME`, add the line it prints to a keys file and pass --keys FILE",
                args.addr
            );
        }
        tracing::warn!(
            addr = %args.addr,
            "no keys file: the API is open to anyone who can reach this loopback address"
        );
    } else {
        tracing::info!(keys = keys.len(), "API keys loaded");
    }
    // Claim the address first: a busy port then fails before the data directory is created.
    let listener = liftlab_server::bind(args.addr)
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let (store, cache): (Arc<dyn liftlab_store::Store>, _) = match &args.store.url {
        Some(url) => {
            let store: Arc<dyn liftlab_store::Store> = Arc::new(offline::open_pg(url)?);
            tracing::info!(
                live_ttl_ms = liftlab_store_pg::LIVE_TTL.as_millis(),
                "store: PostgreSQL (replicas may share it)"
            );
            let cache = CachedStore::with_ttl(Arc::clone(&store), liftlab_store_pg::LIVE_TTL);
            (store, cache)
        }
        None => {
            let cache_bytes =
                u64::try_from(args.cache_size).context("--cache-size is too large")?;
            let store = liftlab_store::SledStore::open_with_cache(&args.data, cache_bytes)
                .with_context(|| format!("cannot open the store in {}", args.data.display()))?;
            let store: Arc<dyn liftlab_store::Store> = Arc::new(store);
            let cache = CachedStore::new(Arc::clone(&store));
            (store, cache)
        }
    };
    let config = Config {
        json_limit: args.json_limit,
        ndjson_limit: args.ndjson_limit,
        rate_limit: args
            .rate_limit
            .map(|rate| liftlab_server::RateLimit::new(rate, args.burst)),
    };
    let state = AppState::with_cache(Arc::new(cache), keys, config);
    let options = ServeOptions {
        workers: args.workers,
        ..ServeOptions::default()
    };
    let served =
        actix_web::rt::System::new().block_on(liftlab_server::serve(state, listener, options));
    // Flush and close even when serving failed: whatever was acknowledged must be on disk.
    let flushed = store.flush().and_then(|()| store.close());
    served.with_context(|| format!("cannot serve on {}", args.addr))?;
    flushed.context("cannot flush and close the store on shutdown")?;
    tracing::info!("store flushed; bye");
    Ok(())
}

fn load_keys(path: &Path) -> anyhow::Result<KeyRing> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the keys file {}", path.display()))?;
    let keys =
        KeyRing::parse(&text).with_context(|| format!("invalid keys file {}", path.display()))?;
    if keys.is_empty() {
        bail!(
            "the keys file {} lists no keys; add one with `liftlab keys new ROLE NAME`",
            path.display()
        );
    }
    Ok(keys)
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}

fn keys_new(role: Role, name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.chars().any(char::is_whitespace) || name.starts_with('#') {
        bail!("the key name must be non-empty, without spaces, and not start with #");
    }
    let secret: [u8; 32] = rand::random();
    let key = format!("llk_{}", hex_encode(&secret));
    let entry = KeyEntry::for_key(role, &key, name);
    println!("{key}");
    eprintln!(
        "This key is shown once; liftlab stores only its SHA-256. Add this line to the keys file:"
    );
    println!("{}", entry.line());
    Ok(())
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

/// Parses a byte size: a whole number with an optional unit (B, KiB, MiB, GiB, KB, MB, GB).
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 1MiB, 512KiB or 1048576"))?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use B, KiB, MiB, GiB, KB, MB or GB)"
            ))
        }
    };
    let size = n
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))?;
    if size == 0 {
        return Err("a size limit must be positive".to_string());
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("1MiB"), Ok(1_048_576));
        assert_eq!(parse_size("64MiB"), Ok(67_108_864));
        assert_eq!(parse_size("512KiB"), Ok(524_288));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("1 parsec").is_err());
        assert!(parse_size("-1MiB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn serve_s_default_cache_size_is_the_store_s() {
        let cli = Cli::try_parse_from(["liftlab", "serve"]).expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("not the serve command");
        };
        assert_eq!(
            u64::try_from(args.cache_size),
            Ok(liftlab_store::DEFAULT_CACHE_BYTES)
        );
    }

    /// Every subcommand, with its path (`liftlab start`, `liftlab audit verify`).
    fn subcommands(command: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        for sub in command.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            out.push((path.clone(), sub.clone()));
            subcommands(sub, path, out);
        }
    }

    #[test]
    fn no_two_arguments_of_a_command_share_a_placeholder_in_help() {
        use clap::CommandFactory as _;
        let mut all = Vec::new();
        subcommands(&Cli::command(), "liftlab".to_string(), &mut all);
        for (path, command) in all {
            let mut seen: Vec<String> = Vec::new();
            for arg in command.get_arguments() {
                if !arg.get_action().takes_values() {
                    continue;
                }
                let names: Vec<String> = match arg.get_value_names() {
                    Some(names) => names.iter().map(ToString::to_string).collect(),
                    None => vec![arg.get_id().as_str().to_uppercase()],
                };
                for name in names {
                    assert!(
                        !seen.contains(&name),
                        "`{path} --help` shows <{name}> for two different arguments"
                    );
                    seen.push(name);
                }
            }
        }
    }

    #[test]
    fn the_experiment_and_the_api_key_have_their_own_names_in_help() {
        use clap::CommandFactory as _;
        let mut start = Cli::command()
            .find_subcommand("start")
            .expect("start")
            .clone();
        let help = start.render_help().to_string();
        assert!(help.contains("<EXPERIMENT>"), "{help}");
        assert!(help.contains("--key <API_KEY>"), "{help}");
    }

    #[test]
    fn rebuild_defaults_its_data_directory_as_serve_does() {
        let serve = Cli::try_parse_from(["liftlab", "serve"]).expect("parses");
        let rebuild = Cli::try_parse_from(["liftlab", "rebuild"]).expect("parses");
        let (Command::Serve(serve), Command::Rebuild(rebuild)) = (serve.command, rebuild.command)
        else {
            panic!("not the serve and rebuild commands");
        };
        assert_eq!(rebuild.data, serve.data);
    }

    #[test]
    fn loopback_addresses_are_recognised() {
        assert!(is_loopback("127.0.0.1".parse().expect("ip")));
        assert!(is_loopback("127.1.2.3".parse().expect("ip")));
        assert!(is_loopback("::1".parse().expect("ip")));
        assert!(is_loopback("::ffff:127.0.0.1".parse().expect("ip")));
        assert!(!is_loopback("0.0.0.0".parse().expect("ip")));
        assert!(!is_loopback("192.0.2.1".parse().expect("ip")));
    }
}
