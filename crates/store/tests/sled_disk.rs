//! SledStore on disk: reopening, tampering with the raw trees, corrupt records, open errors and concurrent writers.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::raw_audit::*;
use common::*;
use liftlab_domain::Transition;
use liftlab_store::{RebuildMode, SledStore, Store, StoreError};
use serde_json::Value;

const T0: i64 = 1_700_000_000_000;

/// A small workload: two experiments, assignments, outcomes, a rebaseline. Returns audit records written.
fn workload(store: &dyn Store) -> u64 {
    for key in ["alpha", "beta"] {
        store
            .create_experiment(fixed_spec(key), T0)
            .expect("created");
        store
            .transition(key, Transition::Start, None, T0 + 1)
            .expect("started");
    }
    let spec = fixed_spec("alpha");
    for i in 0..12u32 {
        let unit = format!("u{i}");
        let arm = if i % 2 == 0 { "ai" } else { "human" };
        store
            .record_assignment(assignment("alpha", &unit, arm, 0.5))
            .expect("assigned");
        store
            .record_outcome(
                &spec,
                outcome(
                    "alpha",
                    &format!("e{i}"),
                    &unit,
                    arm,
                    &[("minutes", f64::from(i))],
                ),
            )
            .expect("recorded");
    }
    store
        .rebaseline("beta", "test", T0 + 99)
        .expect("rebaselined");
    store.verify().expect("verifies").records
}

/// Runs [`workload`] on a fresh store in `dir` and closes it; returns the audit records written.
fn closed_workload(dir: &Path) -> u64 {
    let store = SledStore::open(dir).expect("opens");
    let written = workload(&store);
    store.close().expect("closes");
    written
}

/// Opens the raw sled database of a closed store.
///
/// sled lets go of its lock file a moment after the last handle is dropped, so a closed
/// store's directory may stay locked briefly; this waits for it, as `SledStore::open` does.
fn raw(dir: &Path) -> sled::Db {
    let mut tries = 0;
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(sled::Error::Io(e)) if e.to_string().contains("lock") && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("the raw database opens: {e:?}"),
        }
    }
}

/// A stored JSON value (tag 1).
fn encoded(v: &Value) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend(serde_json::to_vec(v).expect("serializes"));
    out
}

/// Checks that an earlier check changed nothing (it still finds `mismatches`), repairs `store`
/// (expecting that many fixes), checks it clean, and checks it still is after closing and
/// reopening the directory; returns the reopened store.
fn repair_sticks(store: SledStore, dir: &std::path::Path, mismatches: usize) -> SledStore {
    let again = store.rebuild(RebuildMode::Check).expect("runs");
    assert_eq!(again.mismatches.len(), mismatches, "check changed nothing");
    let repair = store.rebuild(RebuildMode::Replace).expect("runs");
    assert!(repair.replaced);
    assert_eq!(
        repair.mismatches.len(),
        mismatches,
        "{:#?}",
        repair.mismatches
    );
    let after = store.rebuild(RebuildMode::Check).expect("runs");
    assert!(after.mismatches.is_empty(), "{:#?}", after.mismatches);
    store.close().expect("closes");
    drop(store);
    let reopened = SledStore::open(dir).expect("reopens");
    let check = reopened.rebuild(RebuildMode::Check).expect("runs");
    assert!(check.mismatches.is_empty(), "{:#?}", check.mismatches);
    reopened
}

/// Builds the workload in a fresh directory, applies `tamper` to the raw trees, and verifies.
fn verify_after(tamper: impl FnOnce(&sled::Db, u64)) -> (liftlab_store::VerifyReport, u64) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let total = closed_workload(dir.path());
    {
        let db = raw(dir.path());
        tamper(&db, total);
        db.flush().expect("flushes");
    }
    let store = SledStore::open(dir.path()).expect("reopens");
    (store.verify().expect("runs"), total)
}

#[test]
fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let snapshot = |store: &dyn Store| {
        (
            store.experiments().expect("listed"),
            store.versions("alpha").expect("found"),
            store.epochs("beta").expect("found"),
            store.assignment("alpha", "u3").expect("read"),
            store.assignment_by_task("alpha", "u4").expect("read"),
            store.aggregates("alpha", 0).expect("found"),
            store.arm_counters("alpha", 0).expect("found"),
            store.assignment_counts("alpha", 0).expect("found"),
            store.unit_rows("alpha", 0).expect("found"),
            store.audit("alpha", 0, 1000).expect("found"),
            store
                .outcomes("alpha")
                .expect("found")
                .collect::<Result<Vec<_>, _>>()
                .expect("decodes"),
            store.verify().expect("verifies"),
        )
    };
    let before = {
        let store = SledStore::open(dir.path()).expect("opens");
        workload(&store);
        let s = snapshot(&store);
        store.close().expect("closes");
        s
    };
    let store = SledStore::open(dir.path()).expect("reopens");
    let after = snapshot(&store);
    assert_eq!(before, after);
    assert!(after.11.ok);
    assert!(after.3.is_some() && after.4.is_some());
    // The chain goes on from where it stopped.
    store
        .record_assignment(assignment("alpha", "late", "ai", 0.5))
        .expect("assigned");
    let report = store.verify().expect("verifies");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, after.11.records + 1);
}

#[test]
fn a_store_checkpointing_its_log_often_keeps_everything_and_closes_with_no_log() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let written = {
        let store = SledStore::open_with(dir.path(), liftlab_store::DEFAULT_CACHE_BYTES, 4 << 10)
            .expect("opens");
        let written = workload(&store);
        let files = std::fs::read_dir(dir.path().join("wal"))
            .expect("the log")
            .count();
        assert!(files <= 2, "checkpoints delete old log files: {files} left");
        written
    };
    let files = std::fs::read_dir(dir.path().join("wal"))
        .expect("the log")
        .count();
    assert_eq!(files, 0, "a clean close leaves no log to replay");
    let store = SledStore::open(dir.path()).expect("reopens");
    assert_eq!(store.verify().expect("verifies").records, written);
    for i in 0..12 {
        let unit = format!("u{i}");
        assert!(
            store.assignment("alpha", &unit).expect("reads").is_some(),
            "{unit}"
        );
    }
    assert_eq!(store.outcomes("alpha").expect("found").count(), 12);
    let rebuilt = store.rebuild(RebuildMode::Check).expect("runs");
    assert!(rebuilt.mismatches.is_empty(), "{:#?}", rebuilt.mismatches);
}

#[test]
fn verify_passes_an_untouched_chain() {
    let (report, total) = verify_after(|_, _| {});
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, total);
}

#[test]
fn verify_names_an_edited_record() {
    let (report, _) = verify_after(|db, _| {
        let audit = db.open_tree("audit").expect("tree");
        edit_block(&audit, 7, |records, i| {
            let record = &mut records[i];
            assert!(record.payload.contains("\"u0\""), "{}", record.payload);
            record.payload = record.payload.replace("\"u0\"", "\"u9\"");
        });
    });
    assert!(!report.ok);
    assert_eq!(report.first_bad, Some(7));
    assert_eq!(report.records, 6);
    assert!(report.reason.expect("a reason").contains("contents"));
}

#[test]
fn verify_names_an_edit_that_also_rewrote_the_hash() {
    let (report, _) = verify_after(|db, _| {
        let audit = db.open_tree("audit").expect("tree");
        edit_block(&audit, 7, |records, i| {
            records[i].ts = 1;
            records[i].hash = [0xab; 32];
        });
    });
    assert_eq!(report.first_bad, Some(7));
}

#[test]
fn verify_names_a_deleted_record() {
    let (report, _) = verify_after(|db, _| {
        let audit = db.open_tree("audit").expect("tree");
        edit_block(&audit, 5, |records, i| {
            records.remove(i);
        });
    });
    assert!(!report.ok);
    assert_eq!(report.first_bad, Some(5));
    assert!(report.reason.expect("a reason").contains("missing"));
}

#[test]
fn verify_names_a_deleted_block() {
    let (report, _) = verify_after(|db, _| {
        let audit = db.open_tree("audit").expect("tree");
        let (first, _) = locate(&audit, 5);
        audit.remove(first.to_be_bytes()).expect("removes");
    });
    assert!(!report.ok);
    let reason = report.reason.expect("a reason");
    assert!(reason.contains("missing"), "{reason}");
    assert!(report.first_bad.is_some_and(|bad| bad <= 5), "{reason}");
}

#[test]
fn verify_names_swapped_records() {
    let (report, _) = verify_after(|db, _| {
        let audit = db.open_tree("audit").expect("tree");
        let (a, i) = locate(&audit, 3);
        let (b, j) = locate(&audit, 4);
        if a == b {
            edit_block(&audit, 3, |records, _| records.swap(i, j));
        } else {
            // Records 3 and 4 sit in blocks of their own: swap the blocks' contents.
            let x = audit.get(a.to_be_bytes()).expect("reads").expect("exists");
            let y = audit.get(b.to_be_bytes()).expect("reads").expect("exists");
            audit.insert(a.to_be_bytes(), y).expect("writes");
            audit.insert(b.to_be_bytes(), x).expect("writes");
        }
    });
    assert!(!report.ok);
    assert_eq!(report.first_bad, Some(3));
}

#[test]
fn verify_names_a_truncated_tail() {
    let (report, total) = verify_after(|db, total| {
        let audit = db.open_tree("audit").expect("tree");
        edit_block(&audit, total, |records, i| {
            records.remove(i);
        });
    });
    assert!(!report.ok);
    assert_eq!(report.first_bad, Some(total));
    assert_eq!(report.records, total - 1);
}

#[test]
fn verify_names_an_unreadable_block() {
    let mut first = 0;
    let (report, _) = verify_after(|db, _| {
        let audit = db.open_tree("audit").expect("tree");
        first = locate(&audit, 9).0;
        audit
            .insert(first.to_be_bytes(), &b"\x01{not json"[..])
            .expect("writes");
    });
    assert_eq!(report.first_bad, Some(first));
    assert!(report.reason.expect("a reason").contains("cannot be read"));
}

/// The raw key of an experiment in the `experiments` table (u16 length + key).
fn experiment_key(key: &str) -> Vec<u8> {
    let mut out = u16::try_from(key.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(key.as_bytes());
    out
}

#[test]
fn corrupt_records_are_errors_that_name_tree_and_key() {
    for garbage in [
        &b"\x09{}"[..],
        &b"\x01{\"key\":"[..],
        &b""[..],
        &b"\x01[1,2]"[..],
    ] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        closed_workload(dir.path());
        {
            let db = raw(dir.path());
            db.open_tree("experiments")
                .expect("tree")
                .insert(experiment_key("alpha"), garbage)
                .expect("writes");
            db.flush().expect("flushes");
        }
        let store = SledStore::open(dir.path()).expect("reopens");
        match store.experiment("alpha") {
            Err(StoreError::Corrupt { tree, key, reason }) => {
                assert_eq!(tree, "experiments");
                assert_eq!(key, hex::encode(experiment_key("alpha")));
                assert!(!reason.is_empty());
            }
            other => panic!("expected Corrupt for {garbage:?}, got {other:?}"),
        }
        assert!(matches!(
            store.experiments(),
            Err(StoreError::Corrupt { .. })
        ));
        // Other experiments are unaffected.
        assert_eq!(store.experiment("beta").expect("readable").key, "beta");
    }
}

/// Every spec stored before `planned_units` existed says `"sequential": false` without it;
/// such a record is read back as sequential instead of being refused as corrupt.
#[test]
fn a_stored_fixed_horizon_spec_without_planned_units_is_read_as_sequential() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    closed_workload(dir.path());
    {
        let db = raw(dir.path());
        let tree = db.open_tree("experiments").expect("tree");
        let stored = tree
            .get(experiment_key("alpha"))
            .expect("reads")
            .expect("alpha is stored");
        assert_eq!(stored[0], 1, "experiments are stored as JSON");
        let mut version: Value = serde_json::from_slice(&stored[1..]).expect("JSON");
        let analysis = version["spec"]["analysis"]
            .as_object_mut()
            .expect("the normalized spec has its analysis");
        analysis.insert("sequential".into(), Value::Bool(false));
        analysis.remove("planned_units");
        tree.insert(experiment_key("alpha"), encoded(&version))
            .expect("writes");
        db.flush().expect("flushes");
    }
    let store = SledStore::open(dir.path()).expect("reopens");
    let alpha = store.experiment("alpha").expect("readable");
    assert!(alpha.spec.analysis().sequential());
    assert_eq!(alpha.spec.analysis().planned_units(), None);
}

#[test]
fn open_refuses_a_locked_directory() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let first = SledStore::open(dir.path()).expect("opens");
    match SledStore::open(dir.path()) {
        Err(StoreError::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    first.close().expect("closes");
    drop(first);
    SledStore::open(dir.path()).expect("opens once released");
}

#[test]
fn open_refuses_a_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"hello").expect("writes");
    let err = SledStore::open(&file).expect_err("refused");
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn open_refuses_a_directory_below_a_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("file");
    std::fs::write(&file, b"hello").expect("writes");
    let err = SledStore::open(file.join("data")).expect_err("refused");
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
}

#[test]
fn open_refuses_garbage_database_files() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    closed_workload(dir.path());
    std::fs::write(dir.path().join("conf"), b"\xff\xfe garbage").expect("writes");
    let err = SledStore::open(dir.path()).expect_err("refused");
    assert!(err.is_internal(), "{err:?}");
}

/// Writes `version` as the schema version of the closed store in `dir`.
fn set_schema(dir: &Path, version: u64) {
    let db = raw(dir);
    db.open_tree("meta")
        .expect("tree")
        .insert(b"schema", encoded(&Value::from(version)))
        .expect("writes");
    db.flush().expect("flushes");
}

#[test]
fn a_version_2_directory_is_upgraded_and_version_1_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let written = closed_workload(dir.path());
    set_schema(dir.path(), 2);
    {
        let store = SledStore::open(dir.path()).expect("a version-2 directory opens");
        assert_eq!(store.verify().expect("verifies").records, written);
        store.close().expect("closes");
    }
    let db = raw(dir.path());
    let stored = db
        .open_tree("meta")
        .expect("tree")
        .get(b"schema")
        .expect("reads")
        .expect("a version");
    assert_eq!(binary::<u64>(&stored), 7, "upgraded to 7");
    drop(db);
    set_schema(dir.path(), 1);
    let err = SledStore::open(dir.path()).expect_err("version 1 is refused");
    assert!(err.to_string().contains("schema version 1"), "{err}");
}

/// The entries of an `assignment_chunks` value, in the layout documented in `chunks`: a format
/// byte (1), the entry count (`u16` LE), then per entry a presence byte and the key and value,
/// each after its `u32` LE length.
fn chunk_entries(mut chunk: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        head
    }
    fn bytes(rest: &mut &[u8]) -> Vec<u8> {
        let len = u32::from_le_bytes(take(rest, 4).try_into().expect("4 bytes"));
        take(rest, len as usize).to_vec()
    }
    assert_eq!(take(&mut chunk, 1), [1], "the chunk format");
    let count = u16::from_le_bytes(take(&mut chunk, 2).try_into().expect("2 bytes"));
    let entries = (0..count)
        .map(|_| {
            assert_eq!(take(&mut chunk, 1), [1], "an assignment, not a removal");
            (bytes(&mut chunk), bytes(&mut chunk))
        })
        .collect();
    assert!(chunk.is_empty(), "nothing after the last entry");
    entries
}

#[test]
fn a_version_3_directory_has_its_assignments_moved_into_chunks() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let written = closed_workload(dir.path());
    let units: Vec<String> = (0..12).map(|i| format!("u{i}")).collect();
    let before: Vec<_> = {
        let store = SledStore::open(dir.path()).expect("opens");
        let all = units
            .iter()
            .map(|u| {
                store
                    .assignment("alpha", u)
                    .expect("reads")
                    .expect("assigned")
            })
            .collect();
        store.close().expect("closes");
        all
    };
    // Lay the directory out as schema 3 did: one `assignments` key per unit, no chunks.
    {
        let db = raw(dir.path());
        let chunks = db.open_tree("assignment_chunks").expect("tree");
        let old = db.open_tree("assignments").expect("tree");
        let mut moved = 0;
        for chunk in chunks.iter() {
            let (_, value) = chunk.expect("reads");
            for (k, v) in chunk_entries(&value) {
                old.insert(k, v).expect("writes");
                moved += 1;
            }
        }
        assert_eq!(moved, 12, "the workload's assignments, each once");
        chunks.clear().expect("clears");
        db.flush().expect("flushes");
    }
    set_schema(dir.path(), 3);
    let store = SledStore::open(dir.path()).expect("a version-3 directory opens");
    let after: Vec<_> = units
        .iter()
        .map(|u| {
            store
                .assignment("alpha", u)
                .expect("reads")
                .expect("still assigned")
        })
        .collect();
    assert_eq!(after, before);
    assert_eq!(store.verify().expect("verifies").records, written);
    let check = store.rebuild(RebuildMode::Check).expect("checks");
    assert!(check.mismatches.is_empty(), "{:?}", check.mismatches);
    // A returning unit keeps its arm; a new one is stored beside the moved ones.
    let again = store
        .record_assignment(assignment("alpha", "u3", "ai", 0.5))
        .expect("returns");
    assert_eq!(again, before[3]);
    store
        .record_assignment(assignment("alpha", "u99", "ai", 0.5))
        .expect("assigned");
    store.close().expect("closes");
    drop(store);
    let db = raw(dir.path());
    assert!(
        db.open_tree("assignments").expect("tree").is_empty(),
        "the old layout is emptied once its entries are in chunks"
    );
    drop(db);
    let store = SledStore::open(dir.path()).expect("reopens");
    assert!(store.assignment("alpha", "u99").expect("reads").is_some());
    assert_eq!(
        store.assignment("alpha", "u5").expect("reads").as_ref(),
        Some(&before[5])
    );
    store.close().expect("closes");
}

#[test]
fn open_refuses_an_unknown_schema_version() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    {
        let store = SledStore::open(dir.path()).expect("opens");
        store.close().expect("closes");
    }
    {
        let db = raw(dir.path());
        db.open_tree("meta")
            .expect("tree")
            .insert(b"schema", encoded(&Value::from(99)))
            .expect("writes");
        db.flush().expect("flushes");
    }
    let err = SledStore::open(dir.path()).expect_err("refused");
    match err {
        StoreError::Corrupt { tree, reason, .. } => {
            assert_eq!(tree, "meta");
            assert!(reason.contains("99"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn rebuild_finds_and_repairs_a_tampered_aggregate() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    closed_workload(dir.path());
    {
        let db = raw(dir.path());
        let aggs = db.open_tree("aggregates").expect("tree");
        let (key, value) = aggs.iter().next().expect("an aggregate").expect("reads");
        let mut agg: liftlab_domain::MetricAggregate = binary(&value);
        agg.moments.push(1e6);
        aggs.insert(key, binary_encoded(&agg)).expect("writes");
        let units = db.open_tree("units").expect("tree");
        let (key, _) = units.iter().next().expect("a row").expect("reads");
        units.remove(key).expect("removes");
        db.flush().expect("flushes");
    }
    let store = SledStore::open(dir.path()).expect("reopens");
    let check = store.rebuild(RebuildMode::Check).expect("runs");
    let mut tables: Vec<&str> = check.mismatches.iter().map(|m| m.table.as_str()).collect();
    tables.sort_unstable();
    assert_eq!(
        tables,
        vec!["aggregates", "units"],
        "{:#?}",
        check.mismatches
    );
    let units_mismatch = check
        .mismatches
        .iter()
        .find(|m| m.table == "units")
        .expect("one");
    assert_eq!(units_mismatch.live, "null");
    assert!(!check.replaced);
    repair_sticks(store, dir.path(), 2);
}

#[test]
fn concurrent_writers_share_commits_and_keep_the_chain() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(SledStore::open(dir.path()).expect("opens"));
    store
        .create_experiment(fixed_spec("conc"), T0)
        .expect("created");
    store
        .transition("conc", Transition::Start, None, T0 + 1)
        .expect("started");
    let threads: Vec<_> = (0..16u32)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let spec = fixed_spec("conc");
                for i in 0..40u32 {
                    let unit = format!("t{t}-u{i}");
                    let arm = if i % 2 == 0 { "ai" } else { "human" };
                    let got = store
                        .record_assignment(assignment("conc", &unit, arm, 0.5))
                        .expect("assigned");
                    assert_eq!(got.unit_id, unit);
                    // Every thread also races on the same unit: one of them wins.
                    let shared = store
                        .record_assignment(assignment("conc", "shared", arm, 0.5))
                        .expect("answered");
                    assert_eq!(shared.unit_id, "shared");
                    let o = outcome(
                        "conc",
                        &format!("{unit}-e"),
                        &unit,
                        arm,
                        &[("minutes", 1.0)],
                    );
                    store.record_outcome(&spec, o).expect("recorded");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a writer thread finished");
    }
    let total: u64 = store
        .assignment_counts("conc", 0)
        .expect("found")
        .iter()
        .map(|c| c.count)
        .sum();
    assert_eq!(total, 16 * 40 + 1);
    let counters: u64 = store
        .arm_counters("conc", 0)
        .expect("found")
        .iter()
        .map(|c| c.outcomes)
        .sum();
    assert_eq!(counters, 16 * 40);
    store.close().expect("closes");
    drop(store);
    let store = SledStore::open(dir.path()).expect("reopens");
    let report = store.verify().expect("verifies");
    assert!(report.ok, "{report:?}");
    // created + period + started, then 641 assignments and 640 outcomes.
    assert_eq!(report.records, 3 + 641 + 640);
    assert!(store
        .rebuild(RebuildMode::Check)
        .expect("runs")
        .mismatches
        .is_empty());
}

/// sled can recover a damaged log by rolling back to an older, valid state; the audit
/// watermark beside the database makes that a refusal at open instead of silent data loss.
#[test]
fn a_database_rolled_back_behind_acknowledged_writes_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("data");
    {
        let store = SledStore::open(&path).expect("opens");
        workload(&store);
        store.close().expect("closes");
    }
    let watermark = std::fs::read(path.join("audit-head")).expect("the watermark was written");
    // Stand-in for sled's rollback: the database comes back empty, the watermark stays.
    std::fs::remove_dir_all(&path).expect("removed");
    {
        let store = SledStore::open(&path).expect("an empty store opens");
        store.close().expect("closes");
    }
    std::fs::write(path.join("audit-head"), &watermark).expect("watermark restored");
    match SledStore::open(&path) {
        Err(StoreError::Open { reason, .. }) => {
            assert!(reason.contains("acknowledged"), "{reason}");
        }
        Ok(_) => panic!("a store that lost acknowledged writes opened"),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// The raw `tasks` key of a task (experiment and task id, each a u16 length + text).
fn task_key(exp: &str, task: &str) -> Vec<u8> {
    let mut out = experiment_key(exp);
    out.extend(experiment_key(task));
    out
}

/// The `tasks` index is derived from the assignments and the chain's `task_bound` records:
/// a missing, wrong or extra entry on disk is a mismatch, and repair restores the index.
#[test]
fn rebuild_finds_and_restores_a_damaged_task_index() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    {
        let store = SledStore::open(dir.path()).expect("opens");
        workload(&store);
        // u2 comes back with a new task, which is bound to it; u20 arrives with a task id
        // of its own. (A unit's own id as its task, the default, has no entry.)
        let mut back = assignment("alpha", "u2", "ai", 0.5);
        back.task_id = "t-back".into();
        store.record_assignment(back).expect("answered");
        let mut own = assignment("alpha", "u20", "ai", 0.5);
        own.task_id = "t-own".into();
        store.record_assignment(own).expect("stored");
        assert!(store
            .rebuild(RebuildMode::Check)
            .expect("runs")
            .mismatches
            .is_empty());
        store.close().expect("closes");
    }
    {
        let db = raw(dir.path());
        let tasks = db.open_tree("tasks").expect("tree");
        let unit = |u: &str| binary_encoded(&u.to_string());
        assert_eq!(
            tasks
                .get(task_key("alpha", "t-own"))
                .expect("reads")
                .map(|v| v.to_vec()),
            Some(unit("u20")),
            "the stored layout of a task entry"
        );
        assert_eq!(tasks.get(task_key("alpha", "u4")).expect("reads"), None);
        // Missing: the bound task and an assignment's own task. Wrong: an entry for u3's own
        // id names u5 (the damage the fuzz run could not see). Extra: a task nobody brought.
        tasks.remove(task_key("alpha", "t-back")).expect("removes");
        tasks.remove(task_key("alpha", "t-own")).expect("removes");
        tasks
            .insert(task_key("alpha", "u3"), unit("u5"))
            .expect("writes");
        tasks
            .insert(task_key("alpha", "ghost"), unit("u7"))
            .expect("writes");
        db.flush().expect("flushes");
    }
    let store = SledStore::open(dir.path()).expect("reopens");
    // The damage is live for the removed tasks; u3's own assignment still wins for its task.
    assert_eq!(
        store.assignment_by_task("alpha", "t-own").expect("read"),
        None
    );
    assert_eq!(
        store
            .assignment_by_task("alpha", "u3")
            .expect("read")
            .map(|a| a.unit_id),
        Some("u3".to_string())
    );
    let check = store.rebuild(RebuildMode::Check).expect("runs");
    let mut found: Vec<(&str, &str, &str, &str)> = check
        .mismatches
        .iter()
        .map(|m| {
            (
                m.table.as_str(),
                m.entry.as_str(),
                m.live.as_str(),
                m.rebuilt.as_str(),
            )
        })
        .collect();
    found.sort_unstable();
    assert_eq!(
        found,
        vec![
            ("tasks", "task \"ghost\"", "\"u7\"", "null"),
            ("tasks", "task \"t-back\"", "null", "\"u2\""),
            ("tasks", "task \"t-own\"", "null", "\"u20\""),
            ("tasks", "task \"u3\"", "\"u5\"", "\"u3\""),
        ],
        "{:#?}",
        check.mismatches
    );
    assert!(check.mismatches.iter().all(|m| m.experiment == "alpha"));
    assert!(!check.replaced);
    let store = repair_sticks(store, dir.path(), 4);
    for (task, unit) in [("u3", "u3"), ("t-own", "u20"), ("t-back", "u2")] {
        assert_eq!(
            store
                .assignment_by_task("alpha", task)
                .expect("read")
                .map(|a| a.unit_id),
            Some(unit.to_string()),
            "{task}"
        );
    }
    assert_eq!(
        store.assignment_by_task("alpha", "ghost").expect("read"),
        None
    );
    assert!(store.verify().expect("verifies").ok);
}

/// Bytes overwritten all over sled's `db` file (as `scripts/storage-faults.sh` does at
/// random): sled either cannot read it (it panics inside `open`, which the store catches) or
/// recovers an older state, which the audit watermark refuses. Either way open says so.
#[test]
fn a_damaged_database_file_is_refused_at_open_never_served() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    closed_workload(dir.path());
    let db_file = dir.path().join("db");
    let mut bytes = std::fs::read(&db_file).expect("the db file");
    // A fixed pattern: 16 bytes of 0xA5 every 4 KiB.
    for start in (0..bytes.len()).step_by(4096) {
        let end = (start + 16).min(bytes.len());
        bytes[start..end].fill(0xA5);
    }
    std::fs::write(&db_file, &bytes).expect("written");
    match SledStore::open(dir.path()) {
        Err(StoreError::Open { reason, .. }) => {
            assert!(
                reason.contains("damaged") || reason.contains("acknowledged"),
                "{reason}"
            );
        }
        Ok(store) => panic!(
            "a damaged database opened: {:?}",
            store.verify().expect("runs")
        ),
        Err(e) => panic!("unexpected error: {e}"),
    }
}
