//! Tamper evidence on disk: editing, deleting, reordering or cutting records of the audit chain of a stopped server makes `liftlab audit verify --data DIR` fail and name the first bad record, and the restarted server's `/v1/audit/verify` says the same.

use std::path::Path;

use serde_json::json;

use crate::harness::{create_running, fixed_spec, liftlab, Server};

/// Runs `liftlab audit verify --data DIR`: (success, stdout + stderr).
fn cli_verify(data: &Path) -> (bool, String) {
    let out = liftlab()
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
    let server = Server::start(data, &[]);
    create_running(&server, None, &fixed_spec("tamper"));
    for i in 0..10 {
        let unit = format!("u{i}");
        let r = server.call(
            "POST",
            "/v1/experiments/tamper/assign",
            None,
            Some(&json!({ "unit_id": unit })),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let r = server.call(
            "POST",
            "/v1/outcomes",
            None,
            Some(
                &json!({"event_id": format!("e{i}"), "experiment": "tamper", "task_id": unit,
                         "metrics": {"minutes": 1.5 + f64::from(i)}}),
            ),
        );
        assert_eq!(r.status, 200, "{}", r.body);
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

/// The sled key of audit record `seq` (big-endian u64).
fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Replaces the first occurrence of `from` in `bytes` by `to` (same length, so any encoding
/// of the record stays well-formed and only its meaning changes).
fn replace_once(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("the record holds the text");
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

/// Builds a history, applies `tamper` to the raw audit tree, and checks that both the CLI and
/// the restarted server name `first_bad`, with a reason containing `reason`.
fn check(tamper: impl FnOnce(&sled::Tree, u64) -> u64, reason: &str) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("data");
    let total = history(&data);
    let first_bad = {
        let db = sled::open(&data).expect("the raw database opens");
        let audit = db.open_tree("audit").expect("the audit tree");
        let first_bad = tamper(&audit, total);
        db.flush().expect("flushes");
        first_bad
    };
    let (ok, text) = cli_verify(&data);
    assert!(!ok, "audit verify must fail: {text}");
    assert!(
        text.contains(&format!("broken at record {first_bad} ")),
        "names record {first_bad}: {text}"
    );
    assert!(text.contains(reason), "says why ({reason}): {text}");
    assert!(!text.contains("panicked"), "{text}");

    let server = Server::start(&data, &[]);
    let r = server.call("GET", "/v1/audit/verify", None, None);
    assert_eq!(r.status, 200, "{}", r.body);
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
fn an_edited_record_is_named() {
    check(
        |audit, _| {
            let record = audit.get(seq_key(7)).expect("reads").expect("record 7");
            // Rename the experiment the record is about, leaving its stored hash alone.
            audit
                .insert(seq_key(7), replace_once(&record, b"tamper", b"tamped"))
                .expect("writes");
            7
        },
        "contents were changed",
    );
}

#[test]
fn a_flipped_bit_is_named() {
    check(
        |audit, _| {
            let mut record = audit
                .get(seq_key(4))
                .expect("reads")
                .expect("record 4")
                .to_vec();
            let middle = record.len() / 2;
            record[middle] ^= 0x10;
            audit.insert(seq_key(4), record).expect("writes");
            4
        },
        "record",
    );
}

#[test]
fn a_deleted_record_is_named() {
    check(
        |audit, _| {
            audit
                .remove(seq_key(5))
                .expect("removes")
                .expect("record 5 existed");
            5
        },
        "missing",
    );
}

#[test]
fn reordered_records_are_named() {
    check(
        |audit, _| {
            let a = audit.get(seq_key(3)).expect("reads").expect("record 3");
            let b = audit.get(seq_key(4)).expect("reads").expect("record 4");
            audit.insert(seq_key(3), b).expect("writes");
            audit.insert(seq_key(4), a).expect("writes");
            3
        },
        "record",
    );
}

#[test]
fn a_cut_tail_is_named() {
    check(
        |audit, total| {
            audit
                .remove(seq_key(total))
                .expect("removes")
                .expect("the last record existed");
            total
        },
        "head",
    );
}
