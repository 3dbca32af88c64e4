//! Crash safety: a child process writes through group commit and prints each acknowledgement; the parent kill -9s it and checks every acknowledged write survived.
//!
//! The test binary plays both roles: run normally it is the parent and re-runs itself with
//! `LIFTLAB_STORE_CRASH_DIR` set, which makes the same test the child writer.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::*;
use liftlab_domain::Transition;
use liftlab_store::{RebuildMode, Recorded, SledStore, Store};

const CHILD_ENV: &str = "LIFTLAB_STORE_CRASH_DIR";

/// The log segment size at which the child's store starts a new segment.
const CHECKPOINT_ENV: &str = "LIFTLAB_STORE_CRASH_CHECKPOINT";

/// Acknowledgements the parent waits for before it kills the child.
const KILL_AFTER: usize = 3_000;

const WRITERS: u32 = 8;

fn child(dir: &str) -> ! {
    let checkpoint: u64 = std::env::var(CHECKPOINT_ENV)
        .expect("the parent sets the checkpoint size")
        .parse()
        .expect("a number");
    let store = Arc::new(
        SledStore::open_with(dir, liftlab_store::DEFAULT_CACHE_BYTES, checkpoint)
            .expect("the child opens the store"),
    );
    store
        .create_experiment(fixed_spec("crash"), 1)
        .expect("created");
    store
        .transition("crash", Transition::Start, None, 2)
        .expect("started");
    println!("ACK ready");
    let threads: Vec<_> = (0..WRITERS)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let spec = fixed_spec("crash");
                for i in 0u32.. {
                    let unit = format!("w{t}-{i}");
                    let arm = if i % 2 == 0 { "ai" } else { "human" };
                    store
                        .record_assignment(assignment("crash", &unit, arm, 0.5))
                        .expect("assigned");
                    ack(&format!("A {unit}"));
                    if t == 0 {
                        // One writer uses the batch path: ten events per call.
                        let batch: Vec<_> = (0..10)
                            .map(|k| {
                                outcome(
                                    "crash",
                                    &format!("{unit}-b{k}"),
                                    &unit,
                                    arm,
                                    &[("minutes", 1.0)],
                                )
                            })
                            .collect();
                        let results = store.record_outcomes(&spec, batch).expect("committed");
                        for (k, r) in results.into_iter().enumerate() {
                            assert_eq!(r.expect("accepted"), Recorded::Accepted);
                            ack(&format!("O {unit}-b{k}"));
                        }
                    } else {
                        let o = outcome(
                            "crash",
                            &format!("{unit}-e"),
                            &unit,
                            arm,
                            &[("minutes", 2.0)],
                        );
                        store.record_outcome(&spec, o).expect("recorded");
                        ack(&format!("O {unit}-e"));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    // The writers never stop; the parent kills this process.
    std::process::exit(3)
}

fn ack(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ACK {line}").expect("stdout is open");
    out.flush().expect("stdout is open");
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    crash_and_check("kill_9_loses_no_acknowledged_write", 64 << 20);
}

/// With 16 KiB segments the child starts a new log segment every few batches, so the kill
/// lands amid segment changes.
#[test]
fn kill_9_amid_log_segments_loses_no_acknowledged_write() {
    crash_and_check(
        "kill_9_amid_log_segments_loses_no_acknowledged_write",
        16 << 10,
    );
}

/// Runs the test `name` again as the child writer with log segments of `checkpoint` bytes,
/// kills it, and checks what it acknowledged.
fn crash_and_check(name: &str, checkpoint: u64) {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut proc = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .env(CHECKPOINT_ENV, checkpoint.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the child starts");
    let stdout = proc.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut units = BTreeSet::new();
    let mut events = BTreeSet::new();
    let mut killed = false;
    for line in lines.by_ref() {
        let line = line.expect("utf-8 output");
        let Some(rest) = line.strip_prefix("ACK ") else {
            continue;
        };
        if let Some(u) = rest.strip_prefix("A ") {
            units.insert(u.to_string());
        } else if let Some(e) = rest.strip_prefix("O ") {
            events.insert(e.to_string());
        }
        if units.len() + events.len() >= KILL_AFTER {
            // SIGKILL: no destructor, no flush, no goodbye.
            proc.kill().expect("the child is killed");
            killed = true;
            break;
        }
    }
    // Acknowledgements already in the pipe were given before the kill: they count too.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(u) = line.strip_prefix("ACK A ") {
            units.insert(u.to_string());
        } else if let Some(e) = line.strip_prefix("ACK O ") {
            events.insert(e.to_string());
        }
    }
    let status = proc.wait().expect("the child is reaped");
    if !killed {
        let mut err = String::new();
        if let Some(mut e) = proc.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        panic!(
            "the child stopped on its own ({status}) after {} acks: {err}",
            units.len() + events.len()
        );
    }

    let generations = log_generations(dir.path());
    if checkpoint < 1 << 20 {
        assert!(
            generations.last().is_some_and(|g| *g > 3),
            "the child never started a new log segment: {generations:?}"
        );
    }
    let store = SledStore::open(dir.path()).expect("the store reopens after kill -9");
    for unit in &units {
        assert!(
            store.assignment("crash", unit).expect("reads").is_some(),
            "acknowledged assignment {unit} was lost"
        );
    }
    let logged: BTreeSet<String> = store
        .outcomes("crash")
        .expect("found")
        .map(|o| o.expect("decodes").event_id)
        .collect();
    let lost: Vec<_> = events.difference(&logged).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged outcomes were lost: {lost:?}",
        lost.len()
    );
    // Whole batches or nothing: the chain verifies and the aggregates match the log.
    let report = store.verify().expect("verifies");
    assert!(report.ok, "{report:?}");
    let rebuilt = store.rebuild(RebuildMode::Check).expect("runs");
    assert!(rebuilt.mismatches.is_empty(), "{:#?}", rebuilt.mismatches);
    // And the store takes writes again.
    let spec = fixed_spec("crash");
    let unit = units.iter().next().expect("some unit").clone();
    let arm = store
        .assignment("crash", &unit)
        .expect("reads")
        .expect("exists")
        .arm;
    let o = outcome("crash", "after-restart", &unit, &arm, &[("minutes", 1.0)]);
    assert_eq!(
        store.record_outcome(&spec, o).expect("recorded"),
        Recorded::Accepted
    );
}

/// The first sequence numbers of the log segments in the data directory `dir`.
fn log_generations(dir: &std::path::Path) -> Vec<u64> {
    let mut found: Vec<u64> = std::fs::read_dir(dir.join("log"))
        .map(|entries| {
            entries
                .filter_map(|e| {
                    e.ok()?
                        .file_name()
                        .to_str()?
                        .strip_suffix(".log")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort_unstable();
    found
}
