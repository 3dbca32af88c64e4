//! "A 2xx means durable": kill -9 the real server while clients stream outcomes, restart it on
//! the same data directory, and check that every acknowledged write is there exactly once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::liftlab;

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

/// POSTs JSON; `Ok((status, body))` for any HTTP answer, `Err` when none came back.
fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Result<(u16, Value), String> {
    let result = agent
        .post(url)
        .set("Content-Type", "application/json")
        .send_string(&body.to_string());
    let res = match result {
        Ok(res) => res,
        Err(ureq::Error::Status(_, res)) => res,
        Err(e) => return Err(e.to_string()),
    };
    let status = res.status();
    let body = res.into_json().map_err(|e| e.to_string())?;
    Ok((status, body))
}

fn get(agent: &ureq::Agent, url: &str) -> Value {
    agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_json()
        .expect("a JSON answer")
}

const EXPERIMENT: &str = "durable";
const UNITS: usize = 300;
const CLIENTS: usize = 4;
const BATCH: usize = 10;
/// Events each client sends at most; the kill comes long before.
const PER_CLIENT: usize = 5_000;

fn event(client: usize, i: usize) -> Value {
    json!({
        "event_id": format!("c{client}-e{i}"),
        "experiment": EXPERIMENT,
        "task_id": format!("u{}", (client * 7919 + i) % UNITS),
        "metrics": {"minutes": f64::from(u8::try_from(i % 50).unwrap_or(0)) + 0.5, "escalated": i % 9 == 0}
    })
}

/// Every outcome event id in the audit log, with how often each appears.
fn recorded_events(agent: &ureq::Agent, base: &str) -> Vec<String> {
    crate::audited_outcome_ids(|after| {
        get(
            agent,
            &format!("{base}/v1/experiments/{EXPERIMENT}/audit?after={after}&limit=1000"),
        )
    })
}

#[test]
fn acknowledged_writes_survive_kill_9_and_count_once() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("data");
    let server = liftlab().serve(&data, &[]);
    let agent = agent();
    let base = server.base.clone();

    let spec = json!({
        "key": EXPERIMENT,
        "arms": [{"key": "human", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai": 0.5}},
        "metrics": [
            {"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary"},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail"}
        ]
    });
    assert_eq!(
        post(&agent, &format!("{base}/v1/experiments"), &spec).map(|r| r.0),
        Ok(201)
    );
    let start = post(
        &agent,
        &format!("{base}/v1/experiments/{EXPERIMENT}/start"),
        &json!({}),
    );
    assert_eq!(start.map(|r| r.0), Ok(200));

    let mut assigned = Vec::new();
    for u in 0..UNITS {
        let (status, body) = post(
            &agent,
            &format!("{base}/v1/experiments/{EXPERIMENT}/assign"),
            &json!({"unit_id": format!("u{u}")}),
        )
        .expect("assign answers");
        assert_eq!(status, 200, "{body}");
        assigned.push(body);
    }

    // Clients stream batches until the server dies under them.
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (acked, sent, stop, base) = (
                Arc::clone(&acked),
                Arc::clone(&sent),
                Arc::clone(&stop),
                base.clone(),
            );
            std::thread::spawn(move || {
                let agent = self::agent();
                let mut i = 0;
                while i < PER_CLIENT && !stop.load(Ordering::Relaxed) {
                    let events: Vec<Value> = (i..i + BATCH).map(|j| event(client, j)).collect();
                    sent.fetch_max(client * PER_CLIENT + i + BATCH, Ordering::Relaxed);
                    match post(
                        &agent,
                        &format!("{base}/v1/outcomes"),
                        &json!({"events": events}),
                    ) {
                        Ok((200, body)) => {
                            assert_eq!(body["accepted"], json!(BATCH), "{body}");
                            let mut acked = acked.lock().expect("acked set");
                            acked.extend((i..i + BATCH).map(|j| format!("c{client}-e{j}")));
                        }
                        Ok((status, body)) => panic!("outcomes answered {status}: {body}"),
                        Err(_) => return i + BATCH,
                    }
                    i += BATCH;
                }
                i
            })
        })
        .collect();

    // Kill once a good share of events has been acknowledged, while clients are mid-stream.
    while acked.lock().expect("acked set").len() < 600 {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let attempted: Vec<usize> = clients
        .into_iter()
        .map(|c| c.join().expect("a client thread"))
        .collect();
    let acked = acked.lock().expect("acked set").clone();
    assert!(acked.len() >= 600);

    let server = liftlab().serve(&data, &[]);
    let base = server.base.clone();
    let recorded = recorded_events(&agent, &base);
    let distinct: BTreeSet<String> = recorded.iter().cloned().collect();
    assert_eq!(distinct.len(), recorded.len(), "no event is recorded twice");
    let lost: Vec<&String> = acked.difference(&distinct).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events were lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );

    // Every acknowledged assignment is still the unit's assignment.
    for (u, before) in assigned.iter().enumerate() {
        let (status, after) = post(
            &agent,
            &format!("{base}/v1/experiments/{EXPERIMENT}/assign"),
            &json!({"unit_id": format!("u{u}")}),
        )
        .expect("assign answers");
        assert_eq!(status, 200);
        assert_eq!(&after, before);
    }

    // Re-sending everything that was attempted counts each event exactly once.
    let mut resent = 0;
    for (client, upto) in attempted.iter().enumerate() {
        for start in (0..*upto).step_by(BATCH) {
            let events: Vec<Value> = (start..start + BATCH).map(|j| event(client, j)).collect();
            let (status, body) = post(
                &agent,
                &format!("{base}/v1/outcomes"),
                &json!({"events": events}),
            )
            .expect("outcomes answer");
            assert_eq!(status, 200, "{body}");
            let accepted = body["accepted"].as_u64().expect("accepted");
            let duplicates = body["duplicates"].as_u64().expect("duplicates");
            assert_eq!(
                accepted + duplicates,
                u64::try_from(BATCH).unwrap_or(0),
                "{body}"
            );
            // Acknowledged events were recorded before the kill, so they come back as duplicates.
            let acknowledged = (start..start + BATCH)
                .filter(|j| acked.contains(&format!("c{client}-e{j}")))
                .count();
            assert!(
                duplicates >= u64::try_from(acknowledged).unwrap_or(u64::MAX),
                "{body}"
            );
            resent += BATCH;
        }
    }
    let recorded = recorded_events(&agent, &base);
    let distinct: BTreeSet<String> = recorded.iter().cloned().collect();
    assert_eq!(distinct.len(), recorded.len(), "no event is recorded twice");
    assert_eq!(
        recorded.len(),
        resent,
        "every attempted event is recorded exactly once"
    );
    assert!(acked.is_subset(&distinct));

    let verify = get(&agent, &format!("{base}/v1/audit/verify"));
    assert_eq!(verify["ok"], json!(true), "{verify}");
    drop(server);
}
