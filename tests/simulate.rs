//! `liftlab simulate` end to end: the real binary drives scenarios through its in-process server, and its report is checked against the scenario's truth.
//!
//! Each run is ONE seeded draw. A correct system puts a 95% interval around the truth in about
//! 19 runs of 20 and finds an A/A difference significant in about 1 of 20, so for some seeds
//! these assertions would fail even with nothing wrong; with a fixed seed every run is the same
//! (assignments are hashed, draws come from one seeded generator), so the tests are stable,
//! and they fail when liftlab's estimates, intervals or verdicts break. `liftlab calibrate`
//! measures the rates over thousands of runs.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::liftlab;

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("api-spec/examples/scenarios")
        .join(name)
}

/// Runs `liftlab simulate SCENARIO --seed SEED --format json` and parses its report.
fn simulate(name: &str, seed: u64) -> Value {
    let out = liftlab()
        .command()
        .arg("simulate")
        .arg(scenario(name))
        .args(["--seed", &seed.to_string(), "--format", "json"])
        .output()
        .expect("liftlab runs");
    assert!(
        out.status.success(),
        "simulate {name} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the report is JSON")
}

/// The check of `metric` for treatment `arm`.
fn check<'a>(report: &'a Value, metric: &str, arm: &str) -> &'a Value {
    report["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|m| m["metric"] == metric && m["arm"] == arm)
        .unwrap_or_else(|| panic!("no check for {metric}/{arm} in {report}"))
}

/// A number from a scenario file, by JSON pointer.
fn number(doc: &Value, pointer: &str) -> f64 {
    doc.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} is a number"))
}

#[test]
fn a_real_cycle_time_win_is_found_and_its_interval_covers_the_truth() {
    // The truth, from the scenario file itself: both arms are log-normal with the same sigma,
    // so the ratio of means is the ratio of medians.
    let text = std::fs::read_to_string(scenario("cycle-time-win.json")).expect("scenario");
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    let human = number(&doc, "/arms/human/cycle_time/lognormal/median");
    let ai = number(&doc, "/arms/ai-assist/cycle_time/lognormal/median");
    let true_lift = ai / human - 1.0;
    assert!(
        true_lift < -0.1,
        "the scenario is a real win for the AI arm"
    );

    let report = simulate("cycle-time-win.json", 7);
    assert_eq!(report["tasks"], doc["tasks"], "every task was sent");
    let primary = check(&report, "cycle_time_minutes", "ai-assist");
    let truth = primary["truth"]["relative"].as_f64().expect("a true lift");
    assert!(
        (truth - true_lift).abs() < 1e-9,
        "simulator truth {truth} vs {true_lift}"
    );
    assert_eq!(primary["truth"]["effect"], "better");

    let reported = &primary["reported"]["relative"];
    let (low, high) = (
        reported["ci_low"].as_f64().expect("ci_low"),
        reported["ci_high"].as_f64().expect("ci_high"),
    );
    assert!(
        low <= true_lift && true_lift <= high,
        "[{low}, {high}] covers {true_lift}"
    );
    assert!(
        high < 0.0,
        "the interval excludes no effect: [{low}, {high}]"
    );
    assert_eq!(primary["reported"]["verdict"], "better");
    assert_eq!(primary["relative_covered"], true);
    assert_eq!(primary["assessment"], "right");
}

#[test]
fn an_aa_test_finds_nothing_at_the_primary_metric() {
    let report = simulate("aa.json", 3);
    let primary = check(&report, "cycle_time_minutes", "ai-assist");
    assert_eq!(
        primary["truth"]["relative"].as_f64(),
        Some(0.0),
        "both arms share one model"
    );
    assert_eq!(primary["truth"]["effect"], "none");
    assert_eq!(primary["reported"]["verdict"], "inconclusive", "{primary}");
    let p = primary["reported"]["p_value"].as_f64().expect("a p-value");
    assert!(p >= 0.05, "Welch's p-value {p} is not significant at 0.05");
    assert_eq!(primary["assessment"], "right");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = simulate("aa.json", 11);
    let b = simulate("aa.json", 11);
    let primary = |r: &Value| check(r, "cycle_time_minutes", "ai-assist")["reported"].clone();
    assert_eq!(primary(&a), primary(&b));
}

/// Now, in Unix milliseconds.
fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(since.as_millis()).expect("in range")
}

#[test]
fn simulated_outcomes_are_never_stamped_after_the_run() {
    // The scenario with the longest outcome delays (a median of 4 hours), whose history ran
    // into the future when its clock was started a typical span before now.
    let dir = tempfile::tempdir().expect("temp dir");
    let server = liftlab().serve(dir.path(), &[]);
    let out = liftlab()
        .command()
        .arg("simulate")
        .arg(scenario("segment-underperforms.json"))
        .args(["--server", &server.base, "--tasks", "400", "--seed", "5"])
        .args(["--experiment", "clocked", "--format", "json"])
        .output()
        .expect("liftlab runs");
    let finished = now_ms();
    assert!(
        out.status.success(),
        "simulate failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every recorded outcome is in the audit log under its own ts.
    let (mut after, mut outcomes, mut latest) = (0, 0, i64::MIN);
    loop {
        let page = server
            .call(
                "GET",
                &format!("/v1/experiments/clocked/audit?after={after}&limit=10000"),
                None,
                None,
            )
            .json();
        for record in page["records"].as_array().expect("records") {
            if record["kind"] == "outcome_recorded" {
                outcomes += 1;
                latest = latest.max(record["ts_ms"].as_i64().expect("ts_ms"));
            }
        }
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(outcomes, 400, "every task's outcome was recorded");
    assert!(
        latest <= finished,
        "the last outcome is stamped {} ms after the run finished",
        latest - finished
    );
    // The history lies in the past: it is hours long and ends at the run.
    assert!(latest > finished - 3_600_000, "the history ends at the run");
}
