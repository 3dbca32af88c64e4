//! Fuzzing the store's decoding: random damage to one view entry in sled or to bytes of the log never panics, and is reported as `StoreError::Corrupt`, by `verify()` or by `rebuild()` wherever the store promises to notice it.
//!
//! A golden data directory is built once per run; each case copies it, damages it (a view
//! entry through the raw sled API, or bytes of the log file), reopens it as a `SledStore` and
//! runs every read, a write, `verify()` and `rebuild(Check)`. `PROPTEST_CASES` sets the case
//! count (scripts/fuzz.sh sets it high).

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use liftlab_domain::Transition;
use liftlab_store::{RebuildMode, SledStore, Store, StoreError};
use proptest::prelude::*;
use proptest::test_runner::Config;

const T0: i64 = 1_700_000_000_000;

fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// The golden directory and the keys of its views.
struct Golden {
    _dir: tempfile::TempDir,
    path: PathBuf,
    keys: Vec<Vec<u8>>,
}

fn golden() -> &'static Golden {
    static GOLDEN: OnceLock<Golden> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("golden");
        {
            let store = SledStore::open(&path).expect("opens");
            workload(&store);
            store.close().expect("closes");
        }
        let db = sled::Config::new()
            .path(path.join("views"))
            .segment_size(128 << 10)
            .open()
            .expect("sled opens");
        let tree = db.open_tree("views").expect("the views tree");
        let keys: Vec<Vec<u8>> = tree
            .iter()
            .keys()
            .map(|k| k.expect("a key").to_vec())
            .filter(|k| k.as_slice() != b"M")
            .collect();
        assert!(keys.len() > 20, "the workload wrote views: {}", keys.len());
        drop(tree);
        drop(db);
        Golden {
            _dir: dir,
            path,
            keys,
        }
    })
}

fn workload(store: &dyn Store) {
    store
        .create_experiment(fixed_spec("alpha"), T0)
        .expect("created");
    store
        .transition("alpha", Transition::Start, None, T0 + 1)
        .expect("started");
    store
        .create_experiment(thompson_spec("bandit", 4, 4), T0)
        .expect("created");
    store
        .transition("bandit", Transition::Start, None, T0 + 1)
        .expect("started");
    let alpha = fixed_spec("alpha");
    let bandit = thompson_spec("bandit", 4, 4);
    for i in 0..8u32 {
        let unit = format!("u{i}");
        let arm = if i % 2 == 0 { "ai" } else { "human" };
        store
            .record_assignment(assignment("alpha", &unit, arm, 0.5))
            .expect("assigned");
        let metrics = [
            ("resolved", f64::from(i % 2)),
            ("minutes", f64::from(i) + 0.25),
        ];
        store
            .record_outcome(
                &alpha,
                outcome("alpha", &format!("e{i}"), &unit, arm, &metrics),
            )
            .expect("recorded");
        let barm = ["human", "ai", "hybrid"][usize::try_from(i % 3).expect("small")];
        store
            .record_assignment(assignment("bandit", &unit, barm, 1.0 / 3.0))
            .expect("assigned");
        store
            .record_outcome(
                &bandit,
                outcome(
                    "bandit",
                    &format!("b{i}"),
                    &unit,
                    barm,
                    &[("resolved", 1.0)],
                ),
            )
            .expect("recorded");
    }
    // A returning unit with a new task: a `task_bound` record and its index entry.
    let mut back = assignment("alpha", "u3", "ai", 0.5);
    back.task_id = "t-back".into();
    store.record_assignment(back).expect("answered");
    store
        .rebaseline("alpha", "fuzz", T0 + 50)
        .expect("rebaselined");
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

/// Every read, a write, `verify()` and `rebuild(Check)`: none may panic. Returns whether
/// anything reported the damage.
fn exercise(store: &SledStore) -> bool {
    let mut noticed = false;
    let mut note = |r: Result<(), StoreError>| noticed |= r.is_err();
    for key in ["alpha", "bandit"] {
        note(store.experiment(key).map(|_| ()));
        note(store.versions(key).map(|_| ()));
        note(store.epochs(key).map(|_| ()));
        note(store.periods(key).map(|_| ()));
        note(store.current_period(key).map(|_| ()));
        note(store.bandit_state(key).map(|_| ()));
        note(store.audit(key, 0, 1000).map(|_| ()));
        for epoch in 0..2 {
            note(store.aggregates(key, epoch).map(|_| ()));
            note(store.arm_counters(key, epoch).map(|_| ()));
            note(store.assignment_counts(key, epoch).map(|_| ()));
            note(store.unit_rows(key, epoch).map(|_| ()));
            note(store.drift_monitor(key, epoch).map(|_| ()));
        }
        for unit in ["u0", "u3", "t-back"] {
            note(store.assignment(key, unit).map(|_| ()));
            note(store.assignment_by_task(key, unit).map(|_| ()));
        }
        note(
            store
                .outcomes(key)
                .and_then(|mut o| o.try_for_each(|o| o.map(|_| ()))),
        );
    }
    note(store.experiments().map(|_| ()));
    note(store.audit_log(0, 1000).map(|_| ()));
    let _ = store.record_assignment(assignment("alpha", "fresh", "ai", 0.5));
    match store.verify() {
        Ok(r) => noticed |= !r.ok,
        Err(_) => noticed = true,
    }
    match store.rebuild(RebuildMode::Check) {
        Ok(r) => noticed |= !r.mismatches.is_empty(),
        Err(_) => noticed = true,
    }
    noticed
}

/// How the data is damaged.
#[derive(Clone, Debug)]
enum Damage {
    /// The view entry (index modulo their count) becomes these bytes.
    View(usize, Vec<u8>),
    /// These bits of the view entry's value are flipped.
    ViewBits(usize, Vec<usize>),
    /// These bits of the log are flipped.
    LogBits(Vec<usize>),
    /// The log is cut to this many bytes (modulo its length).
    LogCut(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(i, b)| Damage::View(i, b)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<usize>(), 1..4)
        )
            .prop_map(|(i, b)| Damage::ViewBits(i, b)),
        proptest::collection::vec(any::<usize>(), 1..4).prop_map(Damage::LogBits),
        any::<usize>().prop_map(Damage::LogCut),
    ]
}

fn log_file(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .expect("the log directory")
        .map(|e| e.expect("an entry").path())
        .collect();
    files.sort();
    files.pop().expect("a segment")
}

fn apply(dir: &Path, d: &Damage) -> bool {
    let g = golden();
    match d {
        Damage::View(i, _) | Damage::ViewBits(i, _) => {
            let db = sled::Config::new()
                .path(dir.join("views"))
                .segment_size(128 << 10)
                .open()
                .expect("sled opens");
            let tree = db.open_tree("views").expect("the views tree");
            let key = &g.keys[i % g.keys.len()];
            let old = tree.get(key).expect("reads").expect("present").to_vec();
            let new = match d {
                Damage::View(_, bytes) => bytes.clone(),
                Damage::ViewBits(_, bits) => {
                    let mut v = old.clone();
                    for b in bits {
                        if !v.is_empty() {
                            let at = b % (v.len() * 8);
                            v[at / 8] ^= 1 << (at % 8);
                        }
                    }
                    v
                }
                _ => unreachable!(),
            };
            tree.insert(key, new.clone()).expect("writes");
            db.flush().expect("flushes");
            new != old
        }
        Damage::LogBits(bits) => {
            let path = log_file(dir);
            let mut bytes = std::fs::read(&path).expect("reads");
            for b in bits {
                let at = b % (bytes.len() * 8);
                bytes[at / 8] ^= 1 << (at % 8);
            }
            std::fs::write(&path, bytes).expect("writes");
            true
        }
        Damage::LogCut(n) => {
            let path = log_file(dir);
            let bytes = std::fs::read(&path).expect("reads");
            let n = n % bytes.len();
            std::fs::write(&path, &bytes[..n]).expect("writes");
            true
        }
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// Damage never panics: the store refuses to open, or every call answers.
    #[test]
    fn damaged_records_are_reported_never_panics(d in damage()) {
        let work = tempfile::tempdir().expect("a temporary directory");
        let dir = work.path().join("copy");
        copy_dir(&golden().path, &dir);
        let changed = apply(&dir, &d);
        let opened = SledStore::open(&dir);
        if let Ok(store) = opened {
            let noticed = exercise(&store);
            // Every view is derived and compared byte for byte by rebuild(), and the log is
            // checked by open and verify(): any change is noticed.
            if changed {
                prop_assert!(noticed, "{d:?} went unnoticed");
            }
        }
    }
}
