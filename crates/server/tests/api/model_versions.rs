//! Model-version changes that outcomes report over HTTP are marked on the page's over-time chart.

use actix_web::http::StatusCode;
use liftlab_server::{app, Config};
use serde_json::json;

use crate::common::*;

#[actix_web::test]
async fn a_new_model_version_in_outcomes_is_marked_on_the_chart() {
    let app = TestApp::new(app(keyed_state(Config::default()))).await;
    create_running(&app, spec("mv")).await;
    // Outcomes an hour apart: the AI arm moves from v1 to v2 at 10:00; the baseline reports none.
    let mut events = Vec::new();
    for i in 0..40 {
        let unit = format!("u{i}");
        let arm = assign(&app, "mv", &unit).await["arm"]
            .as_str()
            .expect("an arm")
            .to_string();
        let hour = 8 + i / 10;
        let mut event = json!({
            "event_id": format!("e{i}"), "experiment": "mv", "task_id": unit,
            "ts": format!("2026-11-30T{hour:02}:15:00Z"),
            "metrics": {"minutes": 10 + i % 7, "escalated": false}
        });
        if arm == "ai" {
            event["model_version"] = json!(if hour < 10 { "v1" } else { "v2" });
        }
        events.push(event);
    }
    let r = post_outcomes(&app, json!({ "events": events })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["accepted"], json!(40), "{}", r.text());

    let page = app
        .get("/experiments/mv")
        .as_role(Role::Viewer)
        .send()
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(
        html.contains("model: ai now runs v2 (first seen 2026-11-30T10:15:00Z)"),
        "the change is marked where v2 was first seen"
    );
    assert!(
        !html.contains("now runs v1"),
        "the first version seen is where the arm started, not a change"
    );
    assert!(
        !html.contains("model: human"),
        "the baseline reported no model"
    );
}
