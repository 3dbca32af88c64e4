//! The result pages of a real `liftlab serve`, loaded in headless Chromium: rendered content and a screenshot of each page.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use liftlab_domain::report::text::decision_interval;
use liftlab_domain::report::Report;
use serde_json::{json, Value};

use crate::harness::{create_running, Server};

const CHROMIUM: &str = "/usr/bin/chromium";
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 2000;

/// Runs headless Chromium with a fresh profile on `url` plus `args`; returns its stdout.
fn chromium(url: &str, args: &[String]) -> Vec<u8> {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{CHROMIUM} could not start: {e}"));
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut out).map(|_| out)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match child.try_wait().expect("chromium status") {
            Some(status) => {
                assert!(status.success(), "chromium failed on {url}: {status}");
                break;
            }
            None if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("chromium did not finish on {url} within two minutes");
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    reader.join().expect("reader").expect("chromium output")
}

/// Checks a PNG's signature and size (from its IHDR chunk) and that it is not a blank image.
fn check_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let height = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
    assert_eq!((width, height), (WIDTH, HEIGHT));
    // A blank 1280×2000 page compresses to a few kilobytes; text, tables and charts do not.
    assert!(
        bytes.len() > 40_000,
        "{} is only {} bytes",
        path.display(),
        bytes.len()
    );
}

/// Where the screenshots are kept for people to look at.
fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pages");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// A support-desk experiment with ROI, segments, a guardrail and a drift monitor.
fn desk_spec() -> Value {
    json!({
        "key": "support-ai",
        "name": "Support desk: AI-drafted replies",
        "hypothesis": "AI-drafted first replies cut handling time without more escalations",
        "owner": "support-ops",
        "arms": [
            {"key": "human", "role": "baseline", "description": "agents write every reply"},
            {"key": "ai_assist", "role": "treatment", "description": "agents edit an AI draft"}
        ],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai_assist": 0.5}},
        "metrics": [
            {"key": "cycle_time", "kind": "duration", "direction": "decrease", "role": "primary"},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail"},
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary"}
        ],
        "segments": ["region"],
        "drift": {"metrics": ["cycle_time"]},
        "roi": {"volume_per_month": 12000, "human_cost_per_hour": 45}
    })
}

/// A deterministic value in [0, 1) per (unit, salt).
fn unit_random(i: u64, salt: u64) -> f64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn feed(server: &Server, units: u64) {
    let regions = ["emea", "amer", "apac"];
    let mut events = Vec::new();
    for i in 0..units {
        let unit = format!("t{i}");
        let region = regions[usize::try_from(i % 3).expect("small")];
        let r = server.call(
            "POST",
            "/v1/experiments/support-ai/assign",
            None,
            Some(&json!({"unit_id": unit, "attributes": {"region": region}})),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let arm = r.json()["arm"].as_str().expect("arm").to_string();
        let ai = arm == "ai_assist";
        let minutes = if ai { 24.0 } else { 30.0 } + 12.0 * unit_random(i, 1);
        let escalated = unit_random(i, 2) < 0.1;
        let cost = if ai { 4.2 } else { 6.0 } + 2.0 * unit_random(i, 3);
        let day = 1 + i % 9;
        events.push(json!({
            "event_id": format!("e{i}"), "experiment": "support-ai", "task_id": unit,
            "ts": format!("2026-03-{day:02}T10:00:00Z"),
            "metrics": {"cycle_time": minutes, "escalated": escalated, "cost": cost},
            "handled_by": if ai && unit_random(i, 4) < 0.7 { "ai" } else { "human" }
        }));
    }
    for chunk in events.chunks(200) {
        let r = server.call(
            "POST",
            "/v1/outcomes",
            None,
            Some(&json!({"events": chunk})),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

#[test]
fn both_pages_render_in_headless_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium package"
    );
    let data = tempfile::tempdir().expect("data dir");
    let server = Server::start(data.path(), &[]);
    create_running(&server, None, &desk_spec());
    feed(&server, 600);

    let pages = [
        ("index", format!("{}/", server.base)),
        (
            "experiment",
            format!("{}/experiments/support-ai", server.base),
        ),
    ];
    // The headline's interval is the primary metric's decision, as the results JSON gives it.
    let results = server.call("GET", "/v1/experiments/support-ai/results", None, None);
    assert_eq!(results.status, 200, "{}", results.body);
    let report: Report = serde_json::from_str(&results.body).expect("results JSON");
    let primary = report
        .metrics
        .iter()
        .find(|m| m.key == "cycle_time")
        .expect("primary metric");
    let decision = primary.comparisons[0]
        .decision
        .expect("a decision at 600 units");
    let headline_interval = decision_interval(&decision);
    assert!(
        report.verdict.contains(&headline_interval),
        "{} / {headline_interval}",
        report.verdict
    );
    let dir = shots_dir();
    for (name, url) in &pages {
        let dom = String::from_utf8(chromium(url, &["--dump-dom".to_string()])).expect("utf-8 DOM");
        assert!(
            dom.contains("Support desk: AI-drafted replies"),
            "{name}: {dom}"
        );
        assert!(
            !dom.contains("<script"),
            "{name}: the pages carry no script"
        );
        if *name == "experiment" {
            for text in [
                "AI assist cuts cycle time by",
                "Key results",
                "Lifts at a glance",
                "Cycle time over time",
                "Return on investment",
                "Segments",
                "Change history",
                "Forest plot of relative lifts",
            ] {
                assert!(dom.contains(text), "{name} lacks {text:?}");
            }
            let verdict = dom
                .split("<p class=\"verdict\">")
                .nth(1)
                .and_then(|rest| rest.split("</p>").next())
                .expect("the verdict paragraph");
            assert!(
                verdict.contains(&headline_interval),
                "the page's headline shows the decision's interval: {verdict} / {headline_interval}"
            );
        } else {
            assert!(dom.contains("href=\"/experiments/support-ai\""), "{dom}");
        }
        let shot = dir.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&shot);
        chromium(
            url,
            &[
                format!("--screenshot={}", shot.display()),
                format!("--window-size={WIDTH},{HEIGHT}"),
            ],
        );
        check_png(&shot);
    }
    server.stop();
}
