//! Reliability of the real binary: kill -9 crash loops under mixed traffic lose nothing acknowledged, storage faults give clear errors, and a runaway key is rate-limited without starving others.
//!
//! The crash loop runs `LIFTLAB_CRASH_ROUNDS` rounds (3 here; scripts/crash-loop.sh runs 20)
//! from the seed `LIFTLAB_CRASH_SEED`. Each round starts `liftlab serve` on the same data
//! directory, drives assignments, outcomes (single and batched) and spec changes from several
//! threads, and SIGKILLs the server after a seeded number of acknowledgements. Then the data
//! directory is opened directly: every acknowledged write must be there, the audit chain must
//! verify and a rebuild from the logs must equal the live aggregates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use liftlab_store::{RebuildMode, SledStore, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::liftlab;
use liftlab_testkit::process::{create_running, keys_file, Client};
use liftlab_testkit::spec;

const FIXED: &str = "crash-fixed";
const BANDIT: &str = "crash-bandit";

/// Requests one traffic thread sends at most in a round, so a round always ends.
const MAX_OPS_PER_THREAD: usize = 4_000;

const THREADS: u64 = 4;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Everything the server acknowledged with a 2xx.
#[derive(Default)]
struct Acks {
    /// (experiment, unit) → (arm, assignment id).
    assignments: BTreeMap<(String, String), (String, String)>,
    /// (experiment, event id).
    events: BTreeSet<(String, String)>,
    /// Spec versions of the fixed experiment, with the hypothesis each one set (if a PUT).
    versions: BTreeMap<u64, Option<String>>,
}

/// Counts acknowledgements across threads so the main thread knows when to strike.
struct Shared {
    acks: Mutex<Acks>,
    count: AtomicUsize,
    stop: AtomicBool,
}

impl Shared {
    fn bump(&self, n: usize) {
        self.count.fetch_add(n, Ordering::SeqCst);
    }
}

/// One traffic thread: assigns fresh units, posts outcomes for them, and (thread 0) changes specs.
fn traffic(client: &Client, shared: &Shared, round: u64, thread: u64, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mine: Vec<(String, String, String)> = Vec::new();
    let mut next_event = 0u64;
    for i in 0..MAX_OPS_PER_THREAD {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let roll: f64 = rng.random();
        let done = if thread == 0 && roll < 0.04 {
            spec_change(client, shared, &mut rng)
        } else if mine.is_empty() || roll < 0.5 {
            let exp = if rng.random_bool(0.5) { FIXED } else { BANDIT };
            let unit = format!("r{round}-w{thread}-u{i}");
            assign(client, shared, exp, &unit).map(|arm| {
                if let Some(arm) = arm {
                    mine.push((exp.to_string(), unit, arm));
                }
            })
        } else {
            let batch = if rng.random_bool(0.3) {
                rng.random_range(2..8)
            } else {
                1
            };
            let events: Vec<Value> = (0..batch)
                .map(|_| {
                    let (exp, unit, _) = &mine[rng.random_range(0..mine.len())];
                    next_event += 1;
                    event(
                        exp,
                        unit,
                        &format!("r{round}-w{thread}-e{next_event}"),
                        &mut rng,
                    )
                })
                .collect();
            post_outcomes(client, shared, events, rng.random_bool(0.3))
        };
        if done.is_err() {
            // No answer: the server is gone. Anything unanswered is not acknowledged.
            return;
        }
    }
}

/// Assigns `unit`; `Some(arm)` when it entered the experiment (and so was stored).
fn assign(
    client: &Client,
    shared: &Shared,
    exp: &str,
    unit: &str,
) -> Result<Option<String>, String> {
    let r = client.try_call(
        "POST",
        &format!("/v1/experiments/{exp}/assign"),
        None,
        Some(&json!({"unit_id": unit, "attributes": {"region": "eu"}})),
    )?;
    if r.status != 200 {
        return Err(format!("assign answered {}: {}", r.status, r.body));
    }
    let a = r.json();
    if a["in_experiment"] != json!(true) {
        // A paused experiment answers the baseline and stores nothing.
        return Ok(None);
    }
    let arm = a["arm"].as_str().expect("an arm").to_string();
    let id = a["assignment_id"].as_str().expect("an id").to_string();
    shared
        .acks
        .lock()
        .expect("acks")
        .assignments
        .insert((exp.to_string(), unit.to_string()), (arm.clone(), id));
    shared.bump(1);
    Ok(Some(arm))
}

fn event(exp: &str, unit: &str, id: &str, rng: &mut StdRng) -> Value {
    let metrics = if exp == FIXED {
        json!({"minutes": rng.random_range(1.0..90.0), "escalated": rng.random_bool(0.2)})
    } else {
        json!({"resolved": rng.random_bool(0.6), "minutes": rng.random_range(1.0..90.0)})
    };
    json!({"event_id": id, "experiment": exp, "task_id": unit, "metrics": metrics,
           "handled_by": "ai"})
}

fn post_outcomes(
    client: &Client,
    shared: &Shared,
    events: Vec<Value>,
    ndjson: bool,
) -> Result<(), String> {
    let ids: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["experiment"].as_str().expect("exp").to_string(),
                e["event_id"].as_str().expect("id").to_string(),
            )
        })
        .collect();
    let body = if ndjson {
        (
            "application/x-ndjson",
            events
                .iter()
                .map(|e| e.to_string() + "\n")
                .collect::<String>(),
        )
    } else if events.len() == 1 {
        ("application/json", events[0].to_string())
    } else {
        ("application/json", json!({ "events": events }).to_string())
    };
    let r = client.send_raw("POST", "/v1/outcomes", None, Some(body))?;
    if r.status != 200 {
        return Err(format!("outcomes answered {}: {}", r.status, r.body));
    }
    let summary = r.json();
    let rejected: BTreeSet<usize> = summary["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .filter_map(|x| x["index"].as_u64().and_then(|i| usize::try_from(i).ok()))
        .collect();
    assert!(rejected.is_empty(), "valid events were rejected: {summary}");
    let mut acks = shared.acks.lock().expect("acks");
    for id in ids {
        acks.events.insert(id);
    }
    drop(acks);
    shared.bump(events.len());
    Ok(())
}

/// A new version of the fixed experiment: a new hypothesis, or a pause followed by a start.
fn spec_change(client: &Client, shared: &Shared, rng: &mut StdRng) -> Result<(), String> {
    let record =
        |r: liftlab_testkit::process::Reply, hypothesis: Option<String>| -> Result<(), String> {
            if r.status != 200 {
                return Err(format!("spec change answered {}: {}", r.status, r.body));
            }
            let version = r.json()["version"].as_u64().expect("a version");
            shared
                .acks
                .lock()
                .expect("acks")
                .versions
                .insert(version, hypothesis);
            shared.bump(1);
            Ok(())
        };
    if rng.random_bool(0.75) {
        let hypothesis = format!("hypothesis {}", rng.random::<u32>());
        let mut spec = spec::fixed(FIXED);
        spec["hypothesis"] = json!(hypothesis);
        let r = client.try_call(
            "PUT",
            &format!("/v1/experiments/{FIXED}"),
            None,
            Some(&spec),
        )?;
        record(r, Some(hypothesis))
    } else {
        let r = client.try_call(
            "POST",
            &format!("/v1/experiments/{FIXED}/pause"),
            None,
            None,
        )?;
        record(r, None)?;
        let r = client.try_call(
            "POST",
            &format!("/v1/experiments/{FIXED}/start"),
            None,
            None,
        )?;
        record(r, None)
    }
}

/// Opens the data directory of a dead server and checks every acknowledged write against it.
fn check_after_crash(data: &Path, acks: &Acks, round: u64) {
    let store = SledStore::open(data).expect("the data directory of a killed server opens");
    for ((exp, unit), (arm, id)) in &acks.assignments {
        let stored = store
            .assignment(exp, unit)
            .expect("readable")
            .unwrap_or_else(|| {
                panic!("round {round}: acknowledged assignment {exp}/{unit} is lost")
            });
        assert_eq!(&stored.arm, arm, "round {round}: {exp}/{unit} changed arm");
        assert_eq!(
            &stored.assignment_id, id,
            "round {round}: {exp}/{unit} changed id"
        );
    }
    let mut logged = BTreeSet::new();
    for exp in [FIXED, BANDIT] {
        for o in store.outcomes(exp).expect("the log is readable") {
            let o = o.expect("every logged outcome decodes");
            assert!(
                logged.insert((exp.to_string(), o.event_id.clone())),
                "round {round}: event {} is logged twice",
                o.event_id
            );
        }
    }
    let lost: Vec<_> = acks.events.difference(&logged).collect();
    assert!(
        lost.is_empty(),
        "round {round}: acknowledged events lost: {lost:?}"
    );
    let current = store.experiment(FIXED).expect("the fixed experiment");
    for (version, hypothesis) in &acks.versions {
        assert!(
            current.version >= *version,
            "round {round}: version {version} lost"
        );
        let stored = store
            .experiment_version(FIXED, *version)
            .unwrap_or_else(|e| panic!("round {round}: version {version} unreadable: {e}"));
        if let Some(h) = hypothesis {
            assert_eq!(
                stored.spec.hypothesis(),
                Some(h.as_str()),
                "round {round}: version {version}"
            );
        }
    }
    let report = store.verify().expect("verify runs");
    assert!(
        report.ok,
        "round {round}: the audit chain does not verify: {report:?}"
    );
    let rebuilt = store.rebuild(RebuildMode::Check).expect("rebuild runs");
    assert!(
        rebuilt.mismatches.is_empty(),
        "round {round}: rebuild differs from the live aggregates: {:#?}",
        rebuilt.mismatches
    );
    eprintln!(
        "crash round {round}: {} assignments, {} events, {} spec versions acknowledged so far; \
         all present; audit chain of {} records verifies; rebuild of {} outcomes matches",
        acks.assignments.len(),
        acks.events.len(),
        acks.versions.len(),
        report.records,
        rebuilt.outcomes
    );
    store.close().expect("closes");
}

#[test]
fn kill_9_during_mixed_traffic_loses_no_acknowledged_write() {
    let rounds = env_or("LIFTLAB_CRASH_ROUNDS", 3);
    let seed = env_or("LIFTLAB_CRASH_SEED", 20_250_101);
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("a temporary directory");
    // scripts/crash-loop.sh keeps the data directory to check it with the CLI afterwards.
    let data = std::env::var_os("LIFTLAB_CRASH_DATA")
        .map_or_else(|| dir.path().join("data"), std::path::PathBuf::from);
    let shared = Arc::new(Shared {
        acks: Mutex::new(Acks::default()),
        count: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    for round in 0..rounds {
        let server = liftlab().serve(&data, &[]);
        if round == 0 {
            create_running(&server, None, &spec::fixed(FIXED));
            create_running(&server, None, &spec::bandit(BANDIT));
        } else {
            // The audit chain still verifies through the API after the restart.
            let v = server.call("GET", "/v1/audit/verify", None, None);
            assert_eq!(v.status, 200, "{}", v.body);
            assert_eq!(v.json()["ok"], json!(true), "{}", v.body);
            // A kill between a pause and a start leaves the experiment paused; resume it.
            let e = server.call("GET", &format!("/v1/experiments/{FIXED}"), None, None);
            if e.json()["status"] == json!("paused") {
                let r = server.ok("POST", &format!("/v1/experiments/{FIXED}/start"), None);
                let version = r.json()["version"].as_u64().expect("a version");
                shared
                    .acks
                    .lock()
                    .expect("acks")
                    .versions
                    .insert(version, None);
            }
        }
        let kill_after = shared.count.load(Ordering::SeqCst) + rng.random_range(50..400);
        shared.stop.store(false, Ordering::SeqCst);
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let client = server.client();
                let shared = Arc::clone(&shared);
                let seed = rng.random::<u64>();
                std::thread::spawn(move || traffic(&client, &shared, round, t, seed))
            })
            .collect();
        while shared.count.load(Ordering::SeqCst) < kill_after
            && !threads.iter().all(|t| t.is_finished())
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        let stderr = server.kill9();
        shared.stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().expect("a traffic thread ends cleanly");
        }
        assert!(
            !stderr.contains("panicked"),
            "the server panicked:\n{stderr}"
        );
        let acks = shared.acks.lock().expect("acks");
        check_after_crash(&data, &acks, round);
    }
}

#[test]
fn a_data_path_that_is_a_file_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"data").expect("written");
    for data in [file.clone(), file.join("below")] {
        let failure = liftlab()
            .try_serve(&data, &[])
            .err()
            .expect("the server refuses to start");
        assert!(
            failure.status.is_some_and(|s| !s.success()),
            "a failing exit status: {failure:?}"
        );
        assert!(
            failure.stderr.contains("cannot open the store"),
            "{}",
            failure.stderr
        );
        assert!(!failure.stderr.contains("panicked"), "{}", failure.stderr);
    }
}

#[test]
fn a_data_directory_in_use_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let first = liftlab().serve(dir.path(), &[]);
    let failure = liftlab()
        .try_serve(dir.path(), &[])
        .err()
        .expect("the second server refuses");
    assert!(failure.stderr.contains("locked"), "{}", failure.stderr);
    // The first server is unaffected.
    assert_eq!(first.call("GET", "/healthz", None, None).status, 200);
    first.stop();
}

/// The raw key of an experiment's state among the views (`E` + key).
fn experiment_key(key: &str) -> Vec<u8> {
    let mut out = b"E".to_vec();
    out.extend_from_slice(key.as_bytes());
    out
}

#[test]
fn a_corrupted_record_is_a_503_problem_naming_it_not_a_wrong_answer() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = liftlab().serve(dir.path(), &[]);
    create_running(&server, None, &spec::fixed("alpha"));
    create_running(&server, None, &spec::fixed("beta"));
    server.stop();
    {
        // The views are one sled tree in `views/` (with the store's segment size).
        let db = sled::Config::new()
            .path(dir.path().join("views"))
            .segment_size(128 << 10)
            .open()
            .expect("the raw database opens");
        let tree = db.open_tree("views").expect("tree");
        let key = experiment_key("alpha");
        let mut value = tree
            .get(&key)
            .expect("reads")
            .expect("alpha is stored")
            .to_vec();
        // Cut the record in half: it no longer decodes.
        value.truncate(value.len() / 2);
        tree.insert(key, value).expect("writes");
        db.flush().expect("flushes");
    }
    let server = liftlab().serve(dir.path(), &[]);
    for (method, path, body) in [
        ("GET", "/v1/experiments/alpha", None),
        (
            "POST",
            "/v1/experiments/alpha/assign",
            Some(json!({"unit_id": "u1"})),
        ),
        ("GET", "/v1/experiments/alpha/results", None),
    ] {
        let r = server.call(method, path, None, body.as_ref());
        let p = r.problem(503);
        let detail = p["detail"].as_str().expect("detail");
        assert!(
            detail.contains("corrupt") && detail.contains("state"),
            "{method} {path}: {detail}"
        );
        let hex: String = experiment_key("alpha")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(detail.contains(&hex), "names the key: {detail}");
    }
    // Undamaged experiments keep working.
    server.ok(
        "POST",
        "/v1/experiments/beta/assign",
        Some(&json!({"unit_id": "u1"})),
    );
    assert_eq!(server.call("GET", "/healthz", None, None).status, 200);
    let stderr = server.stop();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_runaway_key_gets_429_while_another_key_keeps_its_rate() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (runaway, runaway_line) = liftlab().new_key("router", "runaway-router");
    let (calm, calm_line) = liftlab().new_key("router", "calm-router");
    let (scientist, scientist_line) = liftlab().new_key("scientist", "setup");
    let keys = keys_file(dir.path(), &[runaway_line, calm_line, scientist_line]);
    let keys = keys.to_str().expect("a text path");
    // One request an hour with bursts of 5: a test run never sees a refill.
    let server = liftlab().serve(
        &dir.path().join("data"),
        &["--keys", keys, "--rate-limit", "1/h", "--burst", "5"],
    );
    create_running(&server, Some(&scientist), &spec::fixed("limited"));
    let assign = |key: &str, unit: &str| {
        server.call(
            "POST",
            "/v1/experiments/limited/assign",
            Some(key),
            Some(&json!({ "unit_id": unit })),
        )
    };
    let answers: Vec<_> = (0..20)
        .map(|i| assign(&runaway, &format!("r{i}")))
        .collect();
    let ok = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 5, "the burst is served, then refused");
    for r in answers.iter().skip(5) {
        let p = r.problem(429);
        assert!(
            p["type"].as_str().expect("type").ends_with("/rate-limited"),
            "{p}"
        );
        let retry: u64 = r
            .header("retry-after")
            .expect("a Retry-After header")
            .parse()
            .expect("whole seconds");
        assert!(retry >= 1, "{retry}");
    }
    // The calm router still gets its whole burst, and health checks are never limited.
    for i in 0..5 {
        let r = assign(&calm, &format!("c{i}"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for _ in 0..10 {
        assert_eq!(server.call("GET", "/healthz", None, None).status, 200);
    }
    // Unknown keys are limited per address, and still get 401 while within the limit.
    let r = assign("not-a-key", "x");
    r.problem(401);
    let stderr = server.stop();
    for key in [&runaway, &calm, &scientist] {
        assert!(
            !stderr.contains(key.as_str()),
            "a key appears in the server log"
        );
    }
}
