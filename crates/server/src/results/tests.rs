//! In-process tests of the results route and the automatic actions, over a `MemStore` fed through the real HTTP API.

use std::sync::Arc;

use actix_web::test;
use liftlab_domain::report::{Bucket, Report};
use liftlab_store::{MemStore, Store};
use liftlab_testkit::unit_random;
use serde_json::{json, Value};

use crate::{app, AppState, Config, KeyRing};

fn state() -> AppState {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    AppState::new(store, KeyRing::open(), Config::default())
}

fn spec(key: &str, extra: Value) -> Value {
    let mut doc = json!({
        "key": key,
        "arms": [{"key": "human", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai": 0.5}},
        "metrics": [
            {"key": "cycle_time", "kind": "duration", "direction": "decrease", "role": "primary"},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail"}
        ]
    });
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    doc
}

macro_rules! call {
    ($svc:expr, $req:expr) => {{
        let res = test::call_service(&$svc, $req.to_request()).await;
        let status = res.status().as_u16();
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = test::read_body(res).await;
        (status, ct, body)
    }};
}

/// Creates and starts `doc`, assigns `units` units and posts one outcome each, with cycle time
/// and escalation drawn per arm by `values`.
macro_rules! run_experiment {
    ($svc:expr, $doc:expr, $units:expr, $values:expr, $ts:expr) => {{
        let doc: Value = $doc;
        let key = doc["key"].as_str().expect("key").to_string();
        let (s, _, b) = call!($svc, test::TestRequest::post().uri("/v1/experiments").set_json(&doc));
        assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
        let (s, _, _) = call!($svc, test::TestRequest::post().uri(&format!("/v1/experiments/{key}/start")));
        assert_eq!(s, 200);
        let mut events = Vec::new();
        for i in 0..$units {
            let unit = format!("u{i}");
            let (s, _, b) = call!(
                $svc,
                test::TestRequest::post()
                    .uri(&format!("/v1/experiments/{key}/assign"))
                    .set_json(json!({"unit_id": unit}))
            );
            assert_eq!(s, 200);
            let a: Value = serde_json::from_slice(&b).expect("assignment");
            let arm = a["arm"].as_str().expect("arm").to_string();
            let (t, e): (f64, bool) = $values(&arm, i);
            events.push(json!({
                "event_id": format!("e{i}"), "experiment": key, "task_id": unit,
                "ts": $ts(i), "metrics": {"cycle_time": t, "escalated": e}
            }));
        }
        for chunk in events.chunks(100) {
            let (s, _, b) = call!($svc, test::TestRequest::post().uri("/v1/outcomes").set_json(json!({"events": chunk})));
            assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
        }
        key
    }};
}

fn ts(i: u64) -> String {
    format!(
        "2026-03-01T{:02}:{:02}:{:02}Z",
        i / 3600 % 24,
        i / 60 % 60,
        i % 60
    )
}

#[actix_web::test]
async fn results_json_csv_and_epochs_over_http() {
    let svc = test::init_service(app(state())).await;
    let key = run_experiment!(
        svc,
        spec("desk", json!({})),
        400u64,
        |arm: &str, i: u64| {
            let base = if arm == "ai" { 24.0 } else { 30.0 };
            (base + 10.0 * unit_random(i, 1), unit_random(i, 2) < 0.1)
        },
        ts
    );
    let (s, ct, body) = call!(
        svc,
        test::TestRequest::get().uri(&format!("/v1/experiments/{key}/results"))
    );
    assert_eq!(s, 200);
    assert!(ct.starts_with("application/json"));
    let report: Report = serde_json::from_slice(&body).expect("a report");
    assert_eq!(report.experiment, key);
    assert_eq!(report.arms.iter().map(|a| a.assigned).sum::<u64>(), 400);
    let n: u64 = report.metrics[0].arms.iter().map(|a| a.n).sum();
    assert_eq!(n, 400, "every outcome counted once");
    assert_eq!(report.metrics[0].comparisons[0].verdict.as_str(), "better");
    assert!(report.timeline.iter().all(|p| p.date == "2026-03-01"));
    // Seven minutes of data are one hourly point per arm, not a daily one.
    let buckets: Vec<(Bucket, &str, u64)> = report
        .timeline
        .iter()
        .map(|p| (p.bucket, p.start.as_str(), p.n))
        .collect();
    assert_eq!(buckets.len(), 2, "{buckets:?}");
    assert!(
        buckets
            .iter()
            .all(|(b, start, _)| *b == Bucket::Hour && *start == "2026-03-01T00:00:00Z"),
        "{buckets:?}"
    );
    assert_eq!(buckets.iter().map(|(_, _, n)| n).sum::<u64>(), 400);

    // The CSV is the same report, one row per metric comparison.
    let (s, _, csv) = call!(
        svc,
        test::TestRequest::get().uri(&format!("/v1/experiments/{key}/results?format=csv"))
    );
    assert_eq!(s, 200);
    let csv = String::from_utf8(csv.to_vec()).expect("utf-8");
    assert_eq!(csv, report.to_csv());
    assert_eq!(csv.lines().count(), 3);
    // `Accept: text/csv` asks for the same CSV; `?format=` wins over `Accept`.
    let url = format!("/v1/experiments/{key}/results");
    for (uri, accept, csv_wanted) in [
        (url.clone(), "text/csv", true),
        (url.clone(), "application/json;q=0.5, text/csv", true),
        (url.clone(), "text/csv;q=0.2, application/json", false),
        (url.clone(), "*/*", false),
        (format!("{url}?format=json"), "text/csv", false),
        (format!("{url}?format=csv"), "application/json", true),
    ] {
        let (s, ct, body) = call!(
            svc,
            test::TestRequest::get()
                .uri(&uri)
                .insert_header(("accept", accept))
        );
        assert_eq!(s, 200, "{uri} {accept}");
        if csv_wanted {
            assert_eq!(ct, "text/csv; charset=utf-8", "{uri} {accept}");
            assert_eq!(body, csv.as_bytes(), "{uri} {accept}");
        } else {
            assert!(ct.starts_with("application/json"), "{uri} {accept}: {ct}");
        }
    }

    let (s, ct, body) = call!(
        svc,
        test::TestRequest::get().uri(&format!("/v1/experiments/{key}/results?epoch=7"))
    );
    assert_eq!((s, ct.as_str()), (404, "application/problem+json"));
    let p: Value = serde_json::from_slice(&body).expect("problem");
    assert_eq!(
        p["detail"],
        format!("experiment {key} has no epoch 7 (epochs 0 to 0)")
    );
    let (s, ct, _) = call!(
        svc,
        test::TestRequest::get().uri(&format!("/v1/experiments/{key}/results?format=xml"))
    );
    assert_eq!((s, ct.as_str()), (400, "application/problem+json"));
    let (s, _, _) = call!(
        svc,
        test::TestRequest::get().uri("/v1/experiments/nope/results")
    );
    assert_eq!(s, 404);
    let (s, _, _) = call!(
        svc,
        test::TestRequest::get().uri("/v1/experiments/Bad%20Key/results")
    );
    assert_eq!(s, 400);

    // A manual re-baseline opens epoch 1; epoch 0 stays readable.
    let (s, _, _) = call!(
        svc,
        test::TestRequest::post()
            .uri(&format!("/v1/experiments/{key}/rebaseline"))
            .set_json(json!({"reason": "new model"}))
    );
    assert_eq!(s, 200);
    let (_, _, body) = call!(
        svc,
        test::TestRequest::get().uri(&format!("/v1/experiments/{key}/results"))
    );
    let now: Report = serde_json::from_slice(&body).expect("report");
    assert_eq!(now.epoch, 1);
    assert_eq!(now.metrics[0].arms.iter().map(|a| a.n).sum::<u64>(), 0);
    let (_, _, body) = call!(
        svc,
        test::TestRequest::get().uri(&format!("/v1/experiments/{key}/results?epoch=0"))
    );
    let old: Report = serde_json::from_slice(&body).expect("report");
    assert_eq!(old.epoch, 0);
    assert_eq!(old.metrics[0].arms.iter().map(|a| a.n).sum::<u64>(), 400);

    // Both pages render.
    for uri in [
        "/".to_string(),
        format!("/experiments/{key}"),
        format!("/experiments/{key}?epoch=0"),
    ] {
        let (s, ct, body) = call!(svc, test::TestRequest::get().uri(&uri));
        assert_eq!(s, 200, "{uri}");
        assert!(ct.starts_with("text/html"), "{uri}");
        assert!(String::from_utf8_lossy(&body).contains(&key));
    }

    // The experiment page sets both epochs' effects side by side, each from its own report.
    let (_, _, body) = call!(
        svc,
        test::TestRequest::get().uri(&format!("/experiments/{key}"))
    );
    let html = String::from_utf8_lossy(&body);
    let table = &html[html.find("Effect by epoch").expect("the table")..];
    let table = &table[..table.find("</table>").expect("its end")];
    assert!(
        table.contains("?epoch=0") && table.contains("?epoch=1"),
        "{table}"
    );
    assert!(table.contains("new model"), "{table}");
    assert!(
        table.contains("collecting"),
        "epoch 1 has no data yet: {table}"
    );
}

#[actix_web::test]
async fn a_harmful_guardrail_pauses_the_experiment() {
    let state = state();
    let store = state.store.clone();
    let svc = test::init_service(app(state)).await;
    let key = run_experiment!(
        svc,
        spec("harm", json!({"analysis": {"auto_pause_on_harm": true}})),
        1200u64,
        |arm: &str, i: u64| {
            let esc = if arm == "ai" { 0.35 } else { 0.08 };
            (20.0 + 5.0 * unit_random(i, 3), unit_random(i, 4) < esc)
        },
        ts
    );
    let version = store.experiment(&key).expect("experiment");
    assert_eq!(version.status.as_str(), "paused");
    let reason = version.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("guardrail escalated is significantly worse in arm ai"),
        "{reason}"
    );
    let (_, _, body) = call!(
        svc,
        test::TestRequest::get().uri(&format!("/experiments/{key}"))
    );
    let html = String::from_utf8_lossy(&body);
    let warning = html
        .find("The experiment is paused: guardrail escalated")
        .expect("shown");
    assert!(warning < html.find("class=\"verdict\"").expect("verdict"));
}

#[actix_web::test]
async fn a_shared_level_shift_is_workload_drift_and_does_not_rebaseline() {
    let state = state();
    let store = state.store.clone();
    let svc = test::init_service(app(state)).await;
    let key = run_experiment!(
        svc,
        spec(
            "drifty",
            json!({"drift": {"metrics": ["cycle_time"], "reference_window": 100, "recent_window": 50, "auto_rebaseline": true}})
        ),
        1600u64,
        |arm: &str, i: u64| {
            // Cycle time jumps by half for everyone after unit 1000.
            let base = if arm == "ai" { 24.0 } else { 30.0 };
            let shift = if i >= 1000 { 1.5 } else { 1.0 };
            (shift * (base + 4.0 * unit_random(i, 5)), false)
        },
        ts
    );
    let epochs = store.epochs(&key).expect("epochs");
    assert_eq!(epochs.len(), 1, "{epochs:?}");
    let (_, _, body) = call!(
        svc,
        test::TestRequest::get().uri(&format!("/v1/experiments/{key}/results"))
    );
    let report: Report = serde_json::from_slice(&body).expect("report");
    assert!(!report.drift.is_empty());
    assert!(report
        .drift
        .iter()
        .all(|d| d.action == liftlab_domain::report::DriftAction::WorkloadDrift));
    assert!(report.effect_drift.is_empty(), "{:?}", report.effect_drift);
}

#[actix_web::test]
async fn an_effect_change_rebaselines_and_the_page_says_the_advantage_changed() {
    let state = state();
    let store = state.store.clone();
    let svc = test::init_service(app(state)).await;
    let key = run_experiment!(
        svc,
        spec(
            "effecty",
            json!({"drift": {"metrics": ["cycle_time"], "auto_rebaseline": true}})
        ),
        5200u64,
        |arm: &str, i: u64| {
            // The AI arm's advantage (24 + 4U against 30 + 4U) shrinks by half after unit 4600.
            let base = match (arm, i >= 4600) {
                ("ai", false) => 24.0,
                ("ai", true) => 27.0,
                _ => 30.0,
            };
            (base + 4.0 * unit_random(i, 5), false)
        },
        ts
    );
    let epochs = store.epochs(&key).expect("epochs");
    assert_eq!(epochs.len(), 2, "{epochs:?}");
    assert!(
        epochs[1]
            .reason
            .starts_with("effect drift: the lift of ai over human on cycle_time"),
        "{}",
        epochs[1].reason
    );
    let (_, _, body) = call!(
        svc,
        test::TestRequest::get().uri(&format!("/v1/experiments/{key}/results?epoch=0"))
    );
    let old: Report = serde_json::from_slice(&body).expect("report");
    let e = &old.effect_drift[0];
    assert_eq!(e.action, liftlab_domain::report::DriftAction::Rebaselined);
    // Means 26 against 32, then 29 against 32.
    assert!((e.effect_before.estimate + 0.1875).abs() < 0.01, "{e:?}");
    // The alarm comes on the first window after the change, which straddles it, so the after
    // effect lies between the two regimes, clear of the before interval.
    assert!(
        e.effect_before.ci_high < e.effect_after.estimate && e.effect_after.estimate < -0.09,
        "{e:?}"
    );
    let (_, _, body) = call!(
        svc,
        test::TestRequest::get().uri(&format!("/experiments/{key}?epoch=0"))
    );
    let html = String::from_utf8_lossy(&body);
    assert!(html.contains("advantage changed"), "{html}");
}
