//! SledStore on disk: reopening, tampering with the log's bytes and the views, torn and damaged logs, open errors and concurrent writers.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::raw_log::*;
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

/// Opens the raw views database of a closed store (with the store's sled settings).
///
/// sled lets go of its lock file a moment after the last handle is dropped, so a closed
/// store's directory may stay locked briefly; this waits for it, as `SledStore::open` does.
fn raw(dir: &Path) -> (sled::Db, sled::Tree) {
    let mut tries = 0;
    loop {
        let opened = sled::Config::new()
            .path(dir.join("views"))
            .segment_size(128 << 10)
            .open();
        match opened {
            Ok(db) => {
                let tree = db.open_tree("views").expect("the views tree");
                return (db, tree);
            }
            Err(sled::Error::Io(e)) if e.to_string().contains("lock") && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("the raw database opens: {e:?}"),
        }
    }
}

/// The views key of experiment `id`'s entry in table `tag`, followed by `rest`.
fn view_key(tag: u8, id: u32, rest: &[u8]) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend_from_slice(&id.to_be_bytes());
    k.extend_from_slice(rest);
    k
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

/// Builds the workload in a fresh directory, applies `tamper` to its log, and verifies
/// (the tampered records are all before the views' mark, so the store opens).
fn verify_after(tamper: impl FnOnce(&Path, u64)) -> (liftlab_store::VerifyReport, u64) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let total = closed_workload(dir.path());
    tamper(dir.path(), total);
    let store = SledStore::open(dir.path()).expect("reopens");
    (store.verify().expect("verifies"), total)
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
fn a_store_with_small_log_segments_keeps_everything() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let written = {
        let store = SledStore::open_with(dir.path(), liftlab_store::DEFAULT_CACHE_BYTES, 512)
            .expect("opens");
        let written = workload(&store);
        store.close().expect("closes");
        written
    };
    let files = segments(dir.path()).len();
    assert!(files > 3, "the log was split into segments: {files}");
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
    // Paging the audit of one experiment across segments.
    let all = store.audit("alpha", 0, 1000).expect("found");
    let page = store.audit("alpha", all[10].seq, 3).expect("found");
    assert_eq!(page, all[11..14].to_vec());
    let rebuilt = store.rebuild(RebuildMode::Check).expect("runs");
    assert!(rebuilt.mismatches.is_empty(), "{:#?}", rebuilt.mismatches);
}

#[test]
fn verify_passes_an_untouched_chain() {
    let (report, total) = verify_after(|_, _| {});
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, total);
    assert_eq!(report.first_bad, None);
}

/// A forger who edits a record and fixes its CRC up is still named: the hash does not match.
#[test]
fn verify_names_an_edited_record_with_a_fixed_up_crc() {
    let (report, _) = verify_after(|dir, _| {
        // Record 1 creates `alpha`, whose spec JSON is inside it.
        forge(dir, 1, b"\"alpha\"", b"\"alphb\"");
    });
    assert!(!report.ok);
    assert_eq!(report.first_bad, Some(1), "{report:?}");
    assert!(
        report
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("changed")),
        "{report:?}"
    );
}

#[test]
fn verify_names_a_flipped_bit() {
    let (report, _) = verify_after(|dir, _| flip_bit(dir, 6));
    assert_eq!(report.first_bad, Some(6), "{report:?}");
    assert_eq!(report.records, 5);
}

/// A record deleted from the middle: the log no longer reaches the views' mark, so the
/// store refuses to open; the log alone still names the record.
#[test]
fn a_deleted_record_is_refused_at_open_and_named_by_the_log() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    closed_workload(dir.path());
    edit_log(dir.path(), |list| {
        list.remove(4);
    });
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(StoreError::Corrupt { tree: "log", .. })
    ));
    let report = SledStore::verify_dir(dir.path()).expect("walks the log");
    assert_eq!(report.first_bad, Some(5), "{report:?}");
    assert!(report
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("missing")));
}

#[test]
fn verify_names_swapped_records() {
    let (report, _) = verify_after(|dir, _| edit_log(dir, |list| list.swap(2, 3)));
    assert_eq!(report.first_bad, Some(3), "{report:?}");
}

/// A log cut short behind the views' mark lost acknowledged records: refused at open.
#[test]
fn a_log_cut_behind_the_views_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let total = closed_workload(dir.path());
    edit_log(dir.path(), |list| {
        list.pop();
    });
    match SledStore::open(dir.path()) {
        Err(StoreError::Corrupt { tree, key, reason }) => {
            assert_eq!(tree, "log");
            assert!(key.contains("offset"), "{key}");
            assert!(reason.contains(&total.to_string()), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Views restored from an earlier copy (or lost) are caught up from the log at open.
#[test]
fn views_behind_the_log_are_caught_up_at_open() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let early = tempfile::tempdir().expect("a temporary directory");
    {
        let store = SledStore::open(dir.path()).expect("opens");
        store
            .create_experiment(fixed_spec("alpha"), T0)
            .expect("created");
        store.close().expect("closes");
    }
    copy_dir(&dir.path().join("views"), &early.path().join("views"));
    let written = {
        let store = SledStore::open(dir.path()).expect("opens");
        store
            .create_experiment(fixed_spec("beta"), T0)
            .expect("created");
        store
            .transition("beta", Transition::Start, None, T0 + 1)
            .expect("started");
        store
            .rebaseline("beta", "test", T0 + 99)
            .expect("rebaselined");
        let written = store.verify().expect("verifies").records;
        store.close().expect("closes");
        written
    };
    std::fs::remove_dir_all(dir.path().join("views")).expect("removed");
    copy_dir(&early.path().join("views"), &dir.path().join("views"));
    let store = SledStore::open(dir.path()).expect("reopens");
    assert_eq!(store.epochs("beta").expect("found").len(), 2);
    assert_eq!(store.verify().expect("verifies").records, written);
    assert!(store
        .rebuild(RebuildMode::Check)
        .expect("runs")
        .mismatches
        .is_empty());
    store.close().expect("closes");
    drop(store);

    // With no views at all, everything is folded again from the first record.
    std::fs::remove_dir_all(dir.path().join("views")).expect("removed");
    let store = SledStore::open(dir.path()).expect("reopens");
    assert_eq!(store.experiments().expect("listed").len(), 2);
    assert_eq!(store.verify().expect("verifies").records, written);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("readable") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copied");
        }
    }
}

/// A torn last record (a crash amid a write) is cut off at open; a damaged record with
/// records after it is refused, naming the segment and the offset.
#[test]
fn a_torn_tail_is_cut_off_but_damage_before_the_end_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let early = tempfile::tempdir().expect("a temporary directory");
    {
        let store = SledStore::open(dir.path()).expect("opens");
        store
            .create_experiment(fixed_spec("alpha"), T0)
            .expect("created");
        store.close().expect("closes");
    }
    copy_dir(&dir.path().join("views"), &early.path().join("views"));
    let total = closed_workload_more(dir.path());
    let restore_views = || {
        std::fs::remove_dir_all(dir.path().join("views")).expect("removed");
        copy_dir(&early.path().join("views"), &dir.path().join("views"));
    };
    let log = segments(dir.path()).pop().expect("a segment");
    let good = std::fs::read(&log).expect("reads");

    // Half a frame at the end: cut off, everything before it is served.
    let mut torn = good.clone();
    torn.extend_from_slice(&good[..good.len().min(20)]);
    std::fs::write(&log, &torn).expect("writes");
    restore_views();
    {
        let store = SledStore::open(dir.path()).expect("a torn tail opens");
        assert_eq!(store.verify().expect("verifies").records, total);
        store.close().expect("closes");
    }
    assert_eq!(
        std::fs::read(&log).expect("reads"),
        good,
        "the torn frame was cut off"
    );

    // A flipped bit in a record the views have not applied, with records after it.
    restore_views();
    flip_bit(dir.path(), 4);
    match SledStore::open(dir.path()) {
        Err(StoreError::Corrupt { tree, key, .. }) => {
            assert_eq!(tree, "log");
            assert!(
                key.contains(&log.display().to_string()) && key.contains("offset"),
                "{key}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// [`workload`] after an existing experiment `alpha`: returns the records written in all.
fn closed_workload_more(dir: &Path) -> u64 {
    let store = SledStore::open(dir).expect("opens");
    store
        .transition("alpha", Transition::Start, None, T0 + 1)
        .expect("started");
    store
        .create_experiment(fixed_spec("beta"), T0)
        .expect("created");
    for i in 0..5u32 {
        let unit = format!("u{i}");
        store
            .record_assignment(assignment("alpha", &unit, "ai", 0.5))
            .expect("assigned");
    }
    let total = store.verify().expect("verifies").records;
    store.close().expect("closes");
    total
}

#[test]
fn corrupt_views_are_errors_that_name_table_and_key() {
    for garbage in [&b"\x09{}"[..], &b""[..], &b"\xff\xff\xff"[..]] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        closed_workload(dir.path());
        let key = b"Ealpha".to_vec();
        {
            let (db, tree) = raw(dir.path());
            assert!(
                tree.get(&key).expect("reads").is_some(),
                "the state key of alpha"
            );
            tree.insert(&key, garbage).expect("writes");
            db.flush().expect("flushes");
        }
        let store = SledStore::open(dir.path()).expect("reopens");
        match store.experiment("alpha") {
            Err(StoreError::Corrupt {
                tree,
                key: k,
                reason,
            }) => {
                assert_eq!(tree, "state");
                assert_eq!(k, hex::encode(&key));
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
        // And rebuild repairs it.
        repair_sticks(store, dir.path(), 1);
    }
}

/// Every spec stored before `planned_units` existed says `"sequential": false` without it;
/// such a version is read back as sequential instead of being refused as corrupt.
#[test]
fn a_stored_fixed_horizon_spec_without_planned_units_is_read_as_sequential() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    closed_workload(dir.path());
    {
        let (db, tree) = raw(dir.path());
        // alpha is experiment 0; its current version (2, started) is JSON.
        let key = view_key(b'V', 0, &2u64.to_be_bytes());
        let stored = tree.get(&key).expect("reads").expect("alpha's version 2");
        let mut version: Value = serde_json::from_slice(&stored).expect("JSON");
        let analysis = version["spec"]["analysis"]
            .as_object_mut()
            .expect("the normalized spec has its analysis");
        analysis.insert("sequential".into(), Value::Bool(false));
        analysis.remove("planned_units");
        tree.insert(key, serde_json::to_vec(&version).expect("JSON"))
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
    std::fs::write(dir.path().join("views").join("conf"), b"\xff\xfe garbage").expect("writes");
    let err = SledStore::open(dir.path()).expect_err("refused");
    assert!(err.is_internal(), "{err:?}");
}

/// A directory of the older layout (one sled database at its top) is not opened as new.
#[test]
fn open_refuses_the_older_layout_and_names_the_migration() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    {
        let db = sled::open(dir.path()).expect("an old-layout database");
        db.insert(b"schema", &[2u8, 7][..]).expect("writes");
        db.flush().expect("flushes");
    }
    match SledStore::open(dir.path()) {
        Err(StoreError::Open { reason, .. }) => {
            assert!(reason.contains("liftlab migrate --data"), "{reason}");
        }
        other => panic!("expected Open, got {other:?}"),
    }
}

#[test]
fn rebuild_finds_and_repairs_tampered_views() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    closed_workload(dir.path());
    {
        let (db, tree) = raw(dir.path());
        // An aggregate of alpha (experiment 0) changed, a unit removed, a task added.
        let (key, mut value) = tree
            .scan_prefix(view_key(b'A', 0, &[]))
            .next()
            .expect("an aggregate")
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .expect("reads");
        let last = value.len() - 1;
        value[last] ^= 1;
        tree.insert(key, value).expect("writes");
        tree.remove(view_key(b'U', 0, b"u3")).expect("removes");
        tree.insert(
            view_key(b'T', 0, b"ghost"),
            postcard::to_allocvec("u7").expect("encodes"),
        )
        .expect("writes");
        db.flush().expect("flushes");
    }
    let store = SledStore::open(dir.path()).expect("reopens");
    assert_eq!(store.assignment("alpha", "u3").expect("reads"), None);
    // The ghost task answers for u7 until the index is repaired.
    let ghost = store.assignment_by_task("alpha", "ghost").expect("reads");
    assert_eq!(ghost.map(|a| a.unit_id), Some("u7".to_string()));
    let check = store.rebuild(RebuildMode::Check).expect("runs");
    let mut tables: Vec<&str> = check.mismatches.iter().map(|m| m.table.as_str()).collect();
    tables.sort_unstable();
    assert_eq!(
        tables,
        vec!["aggregates", "tasks", "units"],
        "{:#?}",
        check.mismatches
    );
    let unit = check
        .mismatches
        .iter()
        .find(|m| m.table == "units")
        .expect("one");
    assert_eq!(unit.live, "null");
    assert_eq!(unit.experiment, "alpha");
    assert_eq!(unit.entry, "u3");
    assert!(!check.replaced);
    let store = repair_sticks(store, dir.path(), 3);
    assert!(store.assignment("alpha", "u3").expect("reads").is_some());
    assert_eq!(
        store.assignment_by_task("alpha", "ghost").expect("reads"),
        None
    );
}

/// Bandit and drift state are views like any other: rebuild recomputes them from the log.
#[test]
fn rebuild_recomputes_bandit_state() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    {
        let store = SledStore::open(dir.path()).expect("opens");
        store
            .create_experiment(thompson_spec("band", 4, 4), T0)
            .expect("created");
        store
            .transition("band", Transition::Start, None, T0 + 1)
            .expect("started");
        let spec = thompson_spec("band", 4, 4);
        for i in 0..10u32 {
            let unit = format!("u{i}");
            store
                .record_assignment(assignment("band", &unit, "ai", 0.5))
                .expect("assigned");
            let o = outcome("band", &format!("e{i}"), &unit, "ai", &[("resolved", 1.0)]);
            store.record_outcome(&spec, o).expect("recorded");
        }
        store.close().expect("closes");
    }
    {
        let (db, tree) = raw(dir.path());
        tree.remove(view_key(b'B', 0, &[])).expect("removes");
        db.flush().expect("flushes");
    }
    let store = SledStore::open(dir.path()).expect("reopens");
    assert_eq!(store.bandit_state("band").expect("reads"), None);
    let check = store.rebuild(RebuildMode::Check).expect("runs");
    assert_eq!(check.mismatches.len(), 1, "{:#?}", check.mismatches);
    assert_eq!(check.mismatches[0].table, "bandits");
    let store = repair_sticks(store, dir.path(), 1);
    assert!(store.bandit_state("band").expect("reads").is_some());
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
