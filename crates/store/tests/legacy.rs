//! Reading a schema-7 data directory for migration: the fixture written by the schema-7 store, read back through `legacy` and compared with what that store answered.

use std::path::{Path, PathBuf};

use liftlab_store::legacy::{is_legacy, read_chain};
use liftlab_store::{AuditRecord, StoreError};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/schema7")
        .join(name)
}

/// A copy of the fixture directory `name` (opening sled may write, and tests change copies).
fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&fixture(name), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creates");
    for entry in std::fs::read_dir(from).expect("lists") {
        let entry = entry.expect("lists");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copies");
        }
    }
}

fn json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).expect("the fixture's JSON");
    serde_json::from_str(&text).expect("JSON")
}

/// The audit chain as the schema-7 store listed it (`expected.json`).
fn expected_chain() -> Vec<AuditRecord> {
    serde_json::from_value(json("expected.json")["audit"].clone()).expect("audit records")
}

/// The chain the crashed store listed just before it aborted (`crashed.json`).
fn crashed_chain() -> Vec<AuditRecord> {
    serde_json::from_value(json("crashed.json")).expect("audit records")
}

/// Runs `change` on the sled database of `dir`, then closes it.
fn with_sled<T>(dir: &Path, change: impl FnOnce(&sled::Db) -> T) -> T {
    let db = sled::open(dir).expect("sled opens the copy");
    let out = change(&db);
    db.flush().expect("flushes");
    out
}

fn expect_err(dir: &Path) -> StoreError {
    match read_chain(dir) {
        Ok(chain) => panic!(
            "read {} records of a directory it should refuse",
            chain.len()
        ),
        Err(e) => e,
    }
}

#[test]
fn the_clean_directory_reads_as_the_old_store_listed_it() {
    let dir = copy_of("clean");
    assert!(is_legacy(dir.path()));
    let chain = read_chain(dir.path()).expect("reads");
    let expected = expected_chain();
    assert_eq!(chain.len(), 162);
    for (read, listed) in chain.iter().zip(&expected) {
        assert_eq!(read, listed, "record {}", listed.seq);
    }
    assert_eq!(chain, expected);
}

#[test]
fn the_crashed_directory_gives_every_acknowledged_record_from_sled_and_its_log() {
    let dir = copy_of("crashed");
    assert!(is_legacy(dir.path()));
    assert_eq!(read_chain(dir.path()).expect("reads"), crashed_chain());

    // sled alone holds only part of it: without the log, the watermark refuses the rest lost.
    let without_log = copy_of("crashed");
    std::fs::remove_dir_all(without_log.path().join("wal")).expect("removes the log");
    let err = expect_err(without_log.path());
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("records up to 27 were acknowledged"),
        "{err}"
    );
}

#[test]
fn a_record_cut_short_at_the_end_of_the_log_was_never_acknowledged_and_is_dropped() {
    let dir = copy_of("crashed");
    let log = dir.path().join("wal/00000000000000000001.log");
    let len = std::fs::metadata(&log).expect("the log").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("opens");
    file.set_len(len - 3).expect("cuts");
    // The watermark says the cut commit was acknowledged, which a real crash cannot do.
    let err = expect_err(dir.path());
    assert!(err.to_string().contains("were acknowledged"), "{err}");
    std::fs::remove_file(dir.path().join("audit-head")).expect("removes the watermark");
    let chain = read_chain(dir.path()).expect("reads");
    let all = crashed_chain();
    assert!(
        !chain.is_empty() && chain.len() < all.len(),
        "{} records",
        chain.len()
    );
    assert_eq!(chain[..], all[..chain.len()]);
}

#[test]
fn damage_before_the_end_of_the_log_is_refused() {
    let dir = copy_of("crashed");
    let log = dir.path().join("wal/00000000000000000001.log");
    let mut bytes = std::fs::read(&log).expect("the log");
    bytes[20] ^= 0x40; // inside the first record's payload
    std::fs::write(&log, bytes).expect("writes");
    let err = expect_err(dir.path());
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains("damaged at byte 0"), "{err}");
}

/// Replaces the first `from` in the stored blocks by `to`, of the same length.
fn edit_bytes(dir: &Path, from: &str, to: &str) {
    assert_eq!(from.len(), to.len(), "an edit that keeps every length");
    with_sled(dir, |db| {
        let audit = db.open_tree("audit").expect("the audit tree");
        let (key, value) = audit
            .iter()
            .map(|e| e.expect("reads"))
            .find(|(_, v)| v.windows(from.len()).any(|w| w == from.as_bytes()))
            .expect("a block holds the text");
        let at = value
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .expect("found");
        let mut edited = value.to_vec();
        edited[at..at + to.len()].copy_from_slice(to.as_bytes());
        audit.insert(key, edited).expect("writes");
    })
}

#[test]
fn an_edited_record_is_refused_by_its_sequence_number() {
    let dir = copy_of("clean");
    let target = expected_chain()
        .into_iter()
        .find(|r| r.payload.contains(r#""event_id":"ev-ab-07""#))
        .expect("the outcome's record");
    edit_bytes(
        dir.path(),
        r#""event_id":"ev-ab-07""#,
        r#""event_id":"ev-ab-97""#,
    );
    let err = expect_err(dir.path());
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("record {} does not match its hash", target.seq)),
        "{err}"
    );
}

#[test]
fn a_removed_block_is_refused() {
    // The last block: the chain then ends before its stored head.
    let dir = copy_of("clean");
    let last = with_sled(dir.path(), |db| {
        let audit = db.open_tree("audit").expect("the audit tree");
        let (last, _) = audit.last().expect("reads").expect("a block");
        audit.remove(&last).expect("removes");
        u64::from_be_bytes(last.as_ref().try_into().expect("an 8-byte key"))
    });
    let err = expect_err(dir.path());
    let named = format!(
        "record {last} is missing: the chain ends at record {}, but its stored head is record 162",
        last - 1
    );
    assert!(err.to_string().contains(&named), "{err}");

    // A block in the middle: the record after the gap is named.
    let dir = copy_of("clean");
    let second_key = with_sled(dir.path(), |db| {
        let audit = db.open_tree("audit").expect("the audit tree");
        let (key, _) = audit.iter().nth(1).expect("two blocks").expect("reads");
        audit.remove(&key).expect("removes");
        u64::from_be_bytes(key.as_ref().try_into().expect("an 8-byte key"))
    });
    let err = expect_err(dir.path());
    assert!(
        err.to_string()
            .contains(&format!("record {second_key} is missing")),
        "{err}"
    );
}

#[test]
fn other_directories_are_not_legacy() {
    let empty = tempfile::tempdir().expect("a temporary directory");
    assert!(!is_legacy(empty.path()));
    assert!(!is_legacy(&empty.path().join("missing")));
    assert!(matches!(
        read_chain(empty.path()),
        Err(StoreError::Open { .. })
    ));

    // A sled database without the schema marker, as a new layout's views might be.
    let views = tempfile::tempdir().expect("a temporary directory");
    with_sled(views.path(), |db| {
        db.open_tree("units")
            .expect("a tree")
            .insert(b"k", b"v".as_slice())
            .expect("writes");
    });
    assert!(!is_legacy(views.path()));

    // A `meta` tree with a schema this layout never had.
    let newer = tempfile::tempdir().expect("a temporary directory");
    with_sled(newer.path(), |db| {
        db.open_tree("meta")
            .expect("a tree")
            .insert(b"schema", vec![2u8, 8])
            .expect("writes");
    });
    assert!(!is_legacy(newer.path()));
    let err = expect_err(newer.path());
    assert!(err.to_string().contains("schema version 8"), "{err}");
}

#[test]
fn a_directory_another_store_holds_is_locked() {
    let dir = copy_of("clean");
    let held = sled::open(dir.path()).expect("sled opens the copy");
    let err = expect_err(dir.path());
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    drop(held);
}

/// `actual` as JSON, equal to `expected` (what the schema-7 store answered), or a failure
/// naming the experiment and the section.
fn same(experiment: &str, section: &str, actual: impl serde::Serialize, expected: &Value) {
    let actual = serde_json::to_value(actual).expect("serialises");
    let cut = |v: &Value| v.to_string().chars().take(1500).collect::<String>();
    assert!(
        &actual == expected,
        "{experiment}: the migrated store's {section} differ from the schema-7 store's:\n{}\n{}",
        cut(&actual),
        cut(expected)
    );
}

/// [`same`] for a listing whose order is the store's own (each side sorted first).
fn same_set(experiment: &str, section: &str, actual: impl serde::Serialize, expected: &Value) {
    let sorted = |v: Value| {
        let mut items = v.as_array().cloned().unwrap_or_default();
        items.sort_by_key(|i| i.to_string());
        Value::Array(items)
    };
    let actual = sorted(serde_json::to_value(actual).expect("serialises"));
    same(experiment, section, actual, &sorted(expected.clone()));
}

#[test]
fn a_migrated_directory_answers_every_read_as_the_schema7_store_did() {
    use liftlab_store::{SledStore, Store};

    let parent = tempfile::tempdir().expect("a temporary directory");
    let dir = parent.path().join("data");
    copy_dir(&fixture("clean"), &dir);
    let migrated = liftlab_store::legacy::migrate(&dir).expect("the fixture migrates");
    let expected = json("expected.json");
    let chain = expected_chain();
    assert_eq!(migrated.records, chain.len() as u64);
    assert!(
        migrated.backup.join("db").is_file(),
        "the old directory is kept"
    );
    assert!(!is_legacy(&dir), "the directory has the new layout now");

    let store = SledStore::open(&dir).expect("the migrated directory opens");
    let verified = store.verify().expect("verifies");
    assert!(verified.ok, "{verified:?}");
    assert_eq!(verified.records, chain.len() as u64);
    // The same records, one for one (the new chain re-hashes them, and keeps a bandit's
    // period and an automatic action after the outcome that caused them).
    let kinds = |records: &[AuditRecord]| {
        let mut k: Vec<_> = records
            .iter()
            .map(|r| (r.experiment.clone(), r.kind.as_str()))
            .collect();
        k.sort();
        k
    };
    let log = store.audit_log(0, 10_000).expect("the log");
    assert_eq!(kinds(&log), kinds(&chain));

    let keys: Vec<String> = serde_json::from_value(expected["experiment_keys"].clone()).unwrap();
    let listed: Vec<String> = store
        .experiments()
        .expect("experiments")
        .into_iter()
        .map(|v| v.key)
        .collect();
    assert_eq!(listed, keys);
    for e in expected["experiments"].as_array().expect("experiments") {
        let key = e["key"].as_str().expect("a key");
        same(
            key,
            "current version",
            store.experiment(key).unwrap(),
            &e["current"],
        );
        same(
            key,
            "versions",
            store.versions(key).unwrap(),
            &e["versions"],
        );
        same(key, "epochs", store.epochs(key).unwrap(), &e["epochs"]);
        same(key, "periods", store.periods(key).unwrap(), &e["periods"]);
        same(
            key,
            "bandit state",
            store.bandit_state(key).unwrap(),
            &e["bandit_state"],
        );
        let outcomes: Vec<_> = store
            .outcomes(key)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        same(key, "outcome log", outcomes, &e["outcomes"]);
        for a in e["assignments"].as_array().expect("assignments") {
            let unit = a["unit_id"].as_str().expect("a unit");
            same(key, "assignment", store.assignment(key, unit).unwrap(), a);
        }
        for (task, unit) in e["task_index"].as_object().expect("the task index") {
            let found = store
                .assignment_by_task(key, task)
                .unwrap()
                .map(|a| a.unit_id);
            same(key, "task index", found, unit);
        }
        for pe in e["per_epoch"].as_array().expect("epochs") {
            let epoch = pe["epoch"].as_u64().expect("an epoch");
            // Unit rows in unit order (the order of the listing is not part of the contract).
            let mut rows = store.unit_rows(key, epoch).unwrap();
            rows.sort_by(|a, b| a.unit_id.cmp(&b.unit_id));
            let mut old = pe["unit_rows"].as_array().expect("rows").clone();
            old.sort_by_key(|r| r["unit_id"].as_str().unwrap_or_default().to_string());
            same(key, "unit rows", rows, &Value::Array(old));
            same_set(
                key,
                "aggregates",
                store.aggregates(key, epoch).unwrap(),
                &pe["aggregates"],
            );
            same(
                key,
                "counters",
                store.arm_counters(key, epoch).unwrap(),
                &pe["arm_counters"],
            );
            same(
                key,
                "assignment counts",
                store.assignment_counts(key, epoch).unwrap(),
                &pe["assignment_counts"],
            );
            same(
                key,
                "drift monitor",
                store.drift_monitor(key, epoch).unwrap(),
                &pe["drift_monitor"],
            );
        }
    }
    store.close().expect("closes");

    // A second run finds nothing to migrate, and says so.
    match liftlab_store::legacy::migrate(&dir) {
        Err(StoreError::Open { reason, .. }) => assert!(reason.contains("nothing to migrate")),
        other => panic!("a second migration: {other:?}"),
    }
}
