//! Two real `liftlab serve` replicas on one PostgreSQL database: they agree without talking to each other, kill -9 of one loses nothing it acknowledged, and `liftlab migrate` moves a data directory onto the database.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use liftlab_testkit::postgres::fresh_database;
use liftlab_testkit::process::{create_running, Client};
use liftlab_testkit::Server;
use serde_json::{json, Value};

use crate::liftlab;

/// A replica on the database `url` (its `--data` directory is never created).
fn replica(url: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = liftlab().serve(&dir.path().join("unused"), &["--store", url]);
    assert!(
        !dir.path().join("unused").exists(),
        "--store leaves --data alone"
    );
    (dir, server)
}

fn assign(client: &Client, exp: &str, unit: &str) -> Value {
    let r = client.call(
        "POST",
        &format!("/v1/experiments/{exp}/assign"),
        None,
        Some(&json!({"unit_id": unit})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn outcomes(client: &Client, events: &[Value]) -> Value {
    let r = client.call(
        "POST",
        "/v1/outcomes",
        None,
        Some(&json!({"events": events})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn event(exp: &str, id: &str, unit: &str, minutes: f64) -> Value {
    json!({"event_id": id, "experiment": exp, "task_id": unit,
           "metrics": {"minutes": minutes, "escalated": minutes > 20.0}})
}

/// Every outcome event id of an experiment's audit records, as a replica lists them.
fn recorded_events(client: &Client, exp: &str) -> Vec<String> {
    crate::audited_outcome_ids(|after| {
        client
            .call(
                "GET",
                &format!("/v1/experiments/{exp}/audit?after={after}&limit=1000"),
                None,
                None,
            )
            .json()
    })
}

#[test]
fn two_replicas_on_one_database_agree() {
    let url = fresh_database();
    let (_a_dir, a) = replica(&url);
    let (_b_dir, b) = replica(&url);
    let exp = "shared";
    create_running(&a, None, &liftlab_testkit::spec::fixed(exp));

    // Sticky: a unit assigned on one replica gets the same answer on the other.
    let first = assign(&a.client(), exp, "sticky");
    assert_eq!(assign(&b.client(), exp, "sticky"), first);

    // 300 new units, each asked of both replicas at the same moment by two racing threads.
    const UNITS: usize = 300;
    const PAIRS: usize = 4;
    let answers: Arc<Mutex<BTreeMap<(usize, char), Value>>> = Arc::default();
    let threads: Vec<_> = (0..PAIRS)
        .flat_map(|pair| [('a', a.client()), ('b', b.client())].map(|(side, c)| (pair, side, c)))
        .map(|(pair, side, client)| {
            let answers = Arc::clone(&answers);
            std::thread::spawn(move || {
                for u in (pair..UNITS).step_by(PAIRS) {
                    let answer = assign(&client, exp, &format!("u{u}"));
                    answers.lock().expect("answers").insert((u, side), answer);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("an assigning thread");
    }
    let answers = answers.lock().expect("answers").clone();
    for u in 0..UNITS {
        let (x, y) = (&answers[&(u, 'a')], &answers[&(u, 'b')]);
        assert_eq!(x, y, "unit u{u} got one answer from each replica");
        assert_eq!(x["in_experiment"], json!(true));
    }
    let arms: BTreeSet<&str> = answers
        .values()
        .map(|v| v["arm"].as_str().expect("arm"))
        .collect();
    assert_eq!(arms, BTreeSet::from(["ai", "human"]));

    // Outcomes sent to A, then retried on B: B counts none of them again.
    let events: Vec<Value> = (0..UNITS)
        .map(|u| {
            event(
                exp,
                &format!("e{u}"),
                &format!("u{u}"),
                f64::from(u16::try_from(u % 40).expect("small")),
            )
        })
        .collect();
    for chunk in events.chunks(100) {
        let first = outcomes(&a.client(), chunk);
        assert_eq!(first["accepted"], json!(chunk.len()), "{first}");
        let retry = outcomes(&b.client(), chunk);
        assert_eq!(retry["accepted"], json!(0), "{retry}");
        assert_eq!(retry["duplicates"], json!(chunk.len()), "{retry}");
    }
    let recorded = recorded_events(&b.client(), exp);
    assert_eq!(recorded.len(), UNITS, "each outcome is recorded once");

    // Both replicas compute the same results from the shared aggregates.
    let results = |s: &Server| {
        let r = s.call("GET", &format!("/v1/experiments/{exp}/results"), None, None);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let (ra, rb) = (results(&a), results(&b));
    assert_eq!(ra, rb);

    // A stop through A is honoured by B within the cache bound: after it, B serves no
    // treatment to a new unit, nor to a unit it saw before.
    assign(&b.client(), exp, "warms-b-s-cache");
    let r = a.call("POST", &format!("/v1/experiments/{exp}/stop"), None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    // Inside the bound B may still believe the experiment runs; the database refuses the
    // unit, and B answers from fresh state rather than with an error or a treatment.
    let racing = assign(&b.client(), exp, "racing-the-stop");
    assert_eq!(racing["in_experiment"], json!(false), "{racing}");
    std::thread::sleep(liftlab_store_pg::LIVE_TTL + Duration::from_millis(200));
    let late = assign(&b.client(), exp, "late-unit");
    assert_eq!(late["in_experiment"], json!(false), "{late}");
    assert_eq!(late["arm"], json!("human"), "{late}");

    // The chain is one chain, and the CLI checks it (and the aggregates) on the database.
    for s in [&a, &b] {
        let v = s.call("GET", "/v1/audit/verify", None, None).json();
        assert_eq!(v["ok"], json!(true), "{v}");
    }
    let out = liftlab()
        .command()
        .args(["audit", "verify", "--store", &url])
        .output()
        .expect("audit verify runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = liftlab()
        .command()
        .args(["rebuild"])
        .env("LIFTLAB_STORE", &url)
        .output()
        .expect("rebuild runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("no mismatch"), "{stdout}");
}

#[test]
fn kill_9_of_one_replica_loses_no_acknowledged_write() {
    let url = fresh_database();
    let (_a_dir, a) = replica(&url);
    let (_b_dir, b) = replica(&url);
    let exp = "survive";
    create_running(&b, None, &liftlab_testkit::spec::fixed(exp));
    const UNITS: usize = 100;
    for u in 0..UNITS {
        assign(&b.client(), exp, &format!("u{u}"));
    }

    // Clients stream batches to A until it dies under them; B stays up.
    const CLIENTS: usize = 3;
    const BATCH: usize = 20;
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (acked, stop, client) = (Arc::clone(&acked), Arc::clone(&stop), a.client());
            std::thread::spawn(move || {
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) && i < 20_000 {
                    let events: Vec<Value> = (i..i + BATCH)
                        .map(|j| event(exp, &format!("c{c}-e{j}"), &format!("u{}", j % UNITS), 5.0))
                        .collect();
                    let body = json!({"events": events});
                    match client.try_call("POST", "/v1/outcomes", None, Some(&body)) {
                        Ok(r) if r.status == 200 => {
                            assert_eq!(r.json()["accepted"], json!(BATCH), "{}", r.body);
                            let mut acked = acked.lock().expect("acked");
                            acked.extend((i..i + BATCH).map(|j| format!("c{c}-e{j}")));
                        }
                        Ok(r) => panic!("outcomes answered {}: {}", r.status, r.body),
                        Err(_) => return,
                    }
                    i += BATCH;
                }
            })
        })
        .collect();
    while acked.lock().expect("acked").len() < 400 {
        std::thread::sleep(Duration::from_millis(5));
    }
    a.kill9();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("a client thread");
    }
    let acked = acked.lock().expect("acked").clone();

    // B still serves, and has every acknowledged outcome exactly once.
    assign(&b.client(), exp, "after-the-kill");
    let recorded = recorded_events(&b.client(), exp);
    let distinct: BTreeSet<String> = recorded.iter().cloned().collect();
    assert_eq!(distinct.len(), recorded.len(), "no event is recorded twice");
    let lost: Vec<&String> = acked.difference(&distinct).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    let v = b.call("GET", "/v1/audit/verify", None, None).json();
    assert_eq!(v["ok"], json!(true), "{v}");
}

#[test]
fn a_data_directory_migrates_to_postgres_and_serves_the_same() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("data");
    let exp = "moving";
    let before = {
        let server = liftlab().serve(&data, &[]);
        create_running(&server, None, &liftlab_testkit::spec::fixed(exp));
        let events: Vec<Value> = (0..40)
            .map(|u| {
                assign(&server.client(), exp, &format!("u{u}"));
                event(exp, &format!("e{u}"), &format!("u{u}"), f64::from(u))
            })
            .collect();
        outcomes(&server.client(), &events);
        let results = server.call("GET", &format!("/v1/experiments/{exp}/results"), None, None);
        let sticky = assign(&server.client(), exp, "u7");
        server.stop();
        (results.json(), sticky)
    };
    let url = fresh_database();
    let out = liftlab()
        .command()
        .args(["migrate", "--from"])
        .arg(&data)
        .args(["--to", &url])
        .output()
        .expect("migrate runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("copied 1 experiments, 40 assignments, 40 outcomes"),
        "{stdout}"
    );
    assert!(stdout.contains("the copy checks out"), "{stdout}");

    let (_d, replica) = replica(&url);
    let results = replica.call("GET", &format!("/v1/experiments/{exp}/results"), None, None);
    assert_eq!(results.json(), before.0);
    assert_eq!(assign(&replica.client(), exp, "u7"), before.1);
    let again = outcomes(&replica.client(), &[event(exp, "e3", "u3", 3.0)]);
    assert_eq!(again["duplicates"], json!(1), "{again}");
    // A second copy into the same database is refused.
    let out = liftlab()
        .command()
        .args(["migrate", "--from"])
        .arg(&data)
        .args(["--to", &url])
        .output()
        .expect("migrate runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds liftlab data"));
}
