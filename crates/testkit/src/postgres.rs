//! A private PostgreSQL cluster for one test process, and a fresh database per test.
//!
//! [`fresh_database`] answers the URL of a new, empty database. The first call in a process
//! starts the cluster the whole process shares:
//!
//! - if `LIFTLAB_TEST_POSTGRES` is set (`postgres://USER@HOST:PORT/DB`, a role that may create
//!   databases), that server is used and nothing is started;
//! - otherwise `initdb` makes a cluster in a temporary directory and `pg_ctl start` runs it on a
//!   free 127.0.0.1 port, its unix socket in the same directory, `fsync` on (the stores' "a 2xx
//!   means durable" is tested against real syncs). A watchdog child (`sh`) polls the test
//!   process's pid every 200 ms and, once it is gone, stops the cluster with
//!   `pg_ctl stop -m immediate` and deletes the directory, so a test binary that panics, is
//!   killed or simply exits leaves no server behind.
//!
//! The server binaries are found through `pg_config --bindir`, then `/usr/lib/postgresql/*/bin`
//! (newest first), then `PATH`. As root (CI, this project's machines) `initdb` refuses to run,
//! so the cluster is made and run as the `postgres` user (Debian's package creates it) through
//! `runuser`.
//!
//! There is no skip: without PostgreSQL a test that needs it fails with a message saying how
//! to get it (`scripts/test` installs Debian's `postgresql`; `LIFTLAB_TEST_POSTGRES` points at
//! a running server). `CI` and `LIFTLAB_REQUIRE_POSTGRES` change nothing, as there is no
//! fallback to refuse.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The environment variable naming an already running server to use instead of a private one.
pub const SERVER_ENV: &str = "LIFTLAB_TEST_POSTGRES";

/// The role the private cluster is made with (its superuser).
const ROLE: &str = "liftlab";

/// A running server the test process uses.
#[derive(Debug)]
pub struct Cluster {
    /// `postgres://ROLE@127.0.0.1:PORT/postgres` (or the URL of `LIFTLAB_TEST_POSTGRES`).
    pub url: String,
    /// Where `createdb` and `psql` are, when known.
    bindir: Option<PathBuf>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The process's cluster, started on first use; panics with a clear message if it cannot be.
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start) {
        Ok(c) => c,
        Err(e) => panic!("PostgreSQL is needed by this test and could not be started: {e}"),
    }
}

/// The URL of a new, empty database on the process's cluster.
pub fn fresh_database() -> String {
    let cluster = cluster();
    let name = format!(
        "liftlab_test_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let (base, _db) = split_db(&cluster.url);
    let admin = format!("{base}/postgres");
    let psql = cluster
        .bindir
        .as_ref()
        .map_or_else(|| PathBuf::from("psql"), |d| d.join("psql"));
    let out = Command::new(&psql)
        .arg(&admin)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{} could not run: {e}", psql.display()));
    assert!(
        out.status.success(),
        "creating database {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{base}/{name}")
}

/// Splits `postgres://…/DB?…` into the part before the database and the database.
fn split_db(url: &str) -> (String, String) {
    let no_query = url.split('?').next().unwrap_or(url);
    let after_scheme = no_query.find("://").map_or(0, |i| i + 3);
    match no_query[after_scheme..].find('/') {
        Some(i) => (
            no_query[..after_scheme + i].to_string(),
            no_query[after_scheme + i + 1..].to_string(),
        ),
        None => (no_query.to_string(), String::new()),
    }
}

/// The directory of the server binaries: `pg_config --bindir`, `/usr/lib/postgresql/*/bin`
/// (highest version first), or `None` when `initdb` is on `PATH` (or nowhere).
pub fn bindir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && dir.join("initdb").is_file() {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let dir = e.path().join("bin");
            dir.join("initdb").is_file().then_some((version, dir))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

fn tool(bindir: Option<&Path>, name: &str) -> PathBuf {
    bindir.map_or_else(|| PathBuf::from(name), |d| d.join(name))
}

fn start() -> Result<Cluster, String> {
    if let Ok(url) = std::env::var(SERVER_ENV) {
        if !url.is_empty() {
            return Ok(Cluster {
                url,
                bindir: bindir(),
            });
        }
    }
    let bin = bindir();
    let initdb = tool(bin.as_deref(), "initdb");
    let pg_ctl = tool(bin.as_deref(), "pg_ctl");
    if Command::new(&initdb)
        .arg("--version")
        .output()
        .map_or(true, |o| !o.status.success())
    {
        return Err(format!(
            "the server binaries (initdb, pg_ctl) were not found through `pg_config --bindir`, \
             /usr/lib/postgresql/*/bin or PATH. Run scripts/test (it installs Debian's \
             postgresql package), install it yourself (apt-get install postgresql), or set \
             {SERVER_ENV}=postgres://USER@HOST:PORT/DB to use a running server"
        ));
    }
    let as_root = run_output(Command::new("id").arg("-u"))?.trim() == "0";
    let dir = std::env::temp_dir().join(format!("liftlab-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let data = dir.join("data");
    // Run from the cluster's directory: the `postgres` user may not be able to enter the
    // test's working directory.
    let run_as = |program: &Path| -> Command {
        let mut c = if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        c.current_dir(&dir);
        c
    };
    if as_root {
        // The cluster belongs to the unprivileged `postgres` user.
        run_output(Command::new("chown").args(["postgres:", &dir.display().to_string()]))?;
    }
    run_output(
        run_as(&initdb)
            .args(["-D", &data.display().to_string()])
            .args(["-U", ROLE, "-A", "trust", "-E", "UTF8", "--no-locale"])
            .arg("--no-sync"),
    )?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200 \
         -c shared_buffers=64MB",
        dir.display()
    );
    run_output(
        run_as(&pg_ctl)
            .args(["-D", &data.display().to_string(), "-w", "-t", "60"])
            .args(["-l", &dir.join("log").display().to_string()])
            .args(["-o", &options, "start"]),
    )
    .map_err(|e| {
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        format!("{e}\nserver log:\n{log}")
    })?;
    spawn_watchdog(&pg_ctl, &data, &dir, as_root)?;
    Ok(Cluster {
        url: format!("postgres://{ROLE}@127.0.0.1:{port}/postgres"),
        bindir: bin,
    })
}

/// A detached `sh` that stops the cluster and removes its directory once this process is gone.
fn spawn_watchdog(pg_ctl: &Path, data: &Path, dir: &Path, as_root: bool) -> Result<(), String> {
    let stop = format!(
        "{}'{}' stop -D '{}' -m immediate",
        if as_root {
            "runuser -u postgres -- "
        } else {
            ""
        },
        pg_ctl.display(),
        data.display()
    );
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display()
    );
    Command::new("sh")
        .args(["-c", &script])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("the watchdog could not start: {e}"))?;
    Ok(())
}

fn run_output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?} could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_at_the_database() {
        assert_eq!(
            split_db("postgres://a@h:5/db?sslmode=disable"),
            ("postgres://a@h:5".to_string(), "db".to_string())
        );
        assert_eq!(
            split_db("postgres://a@h:5"),
            ("postgres://a@h:5".to_string(), String::new())
        );
    }

    #[test]
    fn two_fresh_databases_are_distinct_and_reachable() {
        let a = fresh_database();
        let b = fresh_database();
        assert_ne!(a, b);
        let psql = tool(cluster().bindir.as_deref(), "psql");
        for url in [a, b] {
            let out = Command::new(&psql)
                .arg(&url)
                .args(["-tAc", "SHOW fsync"])
                .output()
                .expect("psql runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            if std::env::var(SERVER_ENV).is_err() {
                assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "on");
            }
        }
    }
}
