//! Tamper evidence on disk, and the export auditors verify on their own: editing (even with the CRC fixed up), flipping a bit, deleting, reordering or cutting records of the log of a stopped server makes `liftlab audit verify --data DIR` fail and name the first bad record; the restarted server's `/v1/audit/verify` says the same, or, when the log no longer reaches what the views applied (a deletion, a cut), the server refuses to start.

use std::path::Path;

use serde_json::json;

use crate::liftlab;
use liftlab_testkit::process::{create_running, run_ok};
use liftlab_testkit::spec;

#[path = "../crates/store/tests/common/raw_log.rs"]
mod raw_log;
use raw_log::{edit_log, flip_bit, forge};

/// Runs `liftlab audit verify --data DIR`: (success, stdout + stderr).
fn cli_verify(data: &Path) -> (bool, String) {
    let out = liftlab()
        .command()
        .args(["audit", "verify", "--data"])
        .arg(data)
        .output()
        .expect("liftlab audit verify runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A stopped server's data directory holding a few dozen audit records; returns their count.
fn history(data: &Path) -> u64 {
    let server = liftlab().serve(data, &[]);
    create_running(&server, None, &spec::fixed("tamper"));
    for i in 0..10 {
        let unit = format!("u{i}");
        server.ok(
            "POST",
            "/v1/experiments/tamper/assign",
            Some(&json!({ "unit_id": unit })),
        );
        server.ok(
            "POST",
            "/v1/outcomes",
            Some(
                &json!({"event_id": format!("e{i}"), "experiment": "tamper", "task_id": unit,
                         "metrics": {"minutes": 1.5 + f64::from(i)}}),
            ),
        );
    }
    let v = server.call("GET", "/v1/audit/verify", None, None);
    assert_eq!(v.json()["ok"], json!(true), "{}", v.body);
    let records = v.json()["records"].as_u64().expect("a count");
    server.stop();
    let (ok, text) = cli_verify(data);
    assert!(ok, "an untouched chain verifies: {text}");
    assert!(text.contains(&records.to_string()), "{text}");
    records
}

/// Builds a history, applies `tamper` to the raw log, and checks that the CLI names
/// `first_bad`, with a reason containing `reason`; then that the restarted server names it
/// too, or (`refused`) does not start on a log that lost what its views applied.
fn check(tamper: impl FnOnce(&Path, u64) -> u64, reason: &str, refused: bool) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("data");
    let total = history(&data);
    let first_bad = tamper(&data, total);
    let (ok, text) = cli_verify(&data);
    assert!(!ok, "audit verify must fail: {text}");
    assert!(
        text.contains(&format!("broken at record {first_bad} ")),
        "names record {first_bad}: {text}"
    );
    assert!(text.contains(reason), "says why ({reason}): {text}");
    assert!(!text.contains("panicked"), "{text}");

    if refused {
        let Err(failure) = liftlab().try_serve(&data, &[]) else {
            panic!("the server must refuse to start on a log that lost applied records");
        };
        let err = failure.stderr;
        assert!(err.contains("log"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        return;
    }
    let server = liftlab().serve(&data, &[]);
    let r = server.ok("GET", "/v1/audit/verify", None);
    let v = r.json();
    assert_eq!(v["ok"], json!(false), "{v}");
    assert_eq!(v["first_bad"], json!(first_bad), "{v}");
    assert!(
        v["reason"].as_str().is_some_and(|r| r.contains(reason)),
        "{v}"
    );
    server.stop();
}

#[test]
fn an_edited_record_is_named_even_with_its_crc_fixed_up() {
    check(
        |data, _| {
            // Rename the experiment in the spec of record 1, and fix the frame's CRC up.
            forge(data, 1, b"\"tamper\"", b"\"tamped\"");
            1
        },
        "contents were changed",
        false,
    );
}

#[test]
fn a_flipped_bit_is_named() {
    check(
        |data, _| {
            flip_bit(data, 7);
            7
        },
        "record",
        false,
    );
}

#[test]
fn a_deleted_record_is_named() {
    check(
        |data, _| {
            edit_log(data, |list| {
                list.remove(4);
            });
            5
        },
        "missing",
        true,
    );
}

#[test]
fn reordered_records_are_named() {
    check(
        |data, _| {
            edit_log(data, |list| list.swap(2, 3));
            3
        },
        "record",
        false,
    );
}

#[test]
fn a_cut_tail_is_named() {
    check(
        |data, total| {
            edit_log(data, |list| {
                list.pop();
            });
            total
        },
        "head",
        true,
    );
}

/// The export an auditor gets: `liftlab audit export` writes every record as one JSON line,
/// and the chain re-verifies from those lines alone by the hash rule its help states.
#[test]
fn the_exported_chain_verifies_from_its_lines_alone() {
    use sha2::{Digest, Sha256};

    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let records = history(&data);
    let out_file = dir.path().join("audit.jsonl");
    run_ok(
        liftlab()
            .command()
            .args(["audit", "export", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&out_file),
        "liftlab audit export",
    );
    let text = std::fs::read_to_string(&out_file).expect("the export");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len() as u64, records);

    let mut prev = [0u8; 32];
    for (i, r) in lines.iter().enumerate() {
        let seq = r["seq"].as_u64().expect("seq");
        assert_eq!(seq, i as u64 + 1);
        assert_eq!(r["prev_hash"], json!(hex::encode(prev)));
        let mut h = Sha256::new();
        h.update(prev);
        h.update(seq.to_be_bytes());
        for part in ["kind", "experiment", "payload"] {
            let s = r[part].as_str().expect("a string");
            h.update(u32::try_from(s.len()).expect("short").to_be_bytes());
            h.update(s.as_bytes());
        }
        h.update(r["ts"].as_i64().expect("ts").to_be_bytes());
        let hash: [u8; 32] = h.finalize().into();
        assert_eq!(r["hash"], json!(hex::encode(hash)), "record {seq}");
        prev = hash;
    }
    let kinds: Vec<&str> = lines.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "outcome_recorded").count(),
        10
    );
    let first_outcome = lines
        .iter()
        .find(|r| r["kind"] == "outcome_recorded")
        .expect("an outcome");
    let payload: serde_json::Value =
        serde_json::from_str(first_outcome["payload"].as_str().expect("text")).expect("JSON");
    assert_eq!(payload["event_id"], "e0");

    // One experiment's records to standard output; an unknown experiment is an error.
    let one = liftlab()
        .command()
        .args(["audit", "export", "--experiment", "tamper", "--data"])
        .arg(&data)
        .output()
        .expect("runs");
    assert!(one.status.success());
    assert_eq!(String::from_utf8_lossy(&one.stdout), text);
    let none = liftlab()
        .command()
        .args(["audit", "export", "--experiment", "nope", "--data"])
        .arg(&data)
        .output()
        .expect("runs");
    assert!(!none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("nope"),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
}
