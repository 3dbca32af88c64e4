//! The conformance suite: every case runs against `MemStore`, `SledStore` on a temporary directory, `CachedStore` over it, and `PgStore` on a fresh PostgreSQL database.

mod common;

use std::collections::BTreeMap;

use common::*;
use liftlab_domain::{
    co_moments, initial_period, AggKey, AggScope, Change, DomainError, HandledBy, Status,
    Transition,
};
use liftlab_store::{AuditKind, RebuildMode, Recorded, Store, StoreError};

/// Expands every case into a `mem`, a `sled`, a `cached` and a `pg` test.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod mem {
            $(
                #[test]
                fn $case() {
                    let store = liftlab_store::MemStore::new();
                    super::$case(&store);
                }
            )*
        }
        mod cached {
            use liftlab_store::Store as _;
            $(
                #[test]
                fn $case() {
                    let dir = tempfile::tempdir().expect("a temporary directory");
                    let sled = liftlab_store::SledStore::open(dir.path()).expect("the store opens");
                    let store = liftlab_store::CachedStore::new(std::sync::Arc::new(sled));
                    super::$case(&store);
                    store.close().expect("the store closes cleanly");
                }
            )*
        }
        mod pg {
            use liftlab_store::Store as _;
            $(
                #[test]
                fn $case() {
                    let url = liftlab_testkit::postgres::fresh_database();
                    let store = liftlab_store_pg::PgStore::open(&url).expect("the store opens");
                    super::$case(&store);
                    store.close().expect("the store closes cleanly");
                }
            )*
        }
        mod sled {
            use liftlab_store::Store as _;
            $(
                #[test]
                fn $case() {
                    let dir = tempfile::tempdir().expect("a temporary directory");
                    let store = liftlab_store::SledStore::open(dir.path()).expect("the store opens");
                    super::$case(&store);
                    store.close().expect("the store closes cleanly");
                }
            )*
        }
    };
}

conformance!(
    creating_and_reading_experiments,
    updating_checks_the_expected_version_and_opens_periods,
    lifecycle_transitions_are_versions,
    rebaselining_starts_epochs,
    first_assignment_wins_and_tasks_are_indexed,
    the_hot_path_api_answers_as_the_blocking_one,
    assignment_requests_are_validated,
    batch_assignments_answer_per_item,
    outcomes_are_idempotent_and_counted,
    a_rejected_outcome_changes_nothing,
    aggregates_match_a_direct_computation,
    outcomes_of_units_outside_the_experiment_are_logged_only,
    a_batch_counts_a_repeated_event_once,
    the_bandit_recomputes_and_opens_periods,
    the_audit_chain_records_every_change_in_order,
    rebuild_agrees_with_the_live_state,
    a_returning_unit_s_new_task_is_audited_and_rebuilt_without_mismatch,
    closing_refuses_writes_but_keeps_reads,
    drift_monitors_follow_outcomes_per_epoch,
    paired_metrics_are_stored_and_rebuilt,
    a_harmful_batch_pauses_the_experiment_in_the_same_commit,
);

const T0: i64 = 1_700_000_000_000;

fn running(store: &dyn Store, key: &str) {
    store
        .create_experiment(fixed_spec(key), T0)
        .expect("created");
    store
        .transition(key, Transition::Start, None, T0 + 1)
        .expect("started");
}

fn not_found<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::NotFound { .. }))
}

fn creating_and_reading_experiments(store: &dyn Store) {
    let v = store
        .create_experiment(fixed_spec("triage"), T0)
        .expect("created");
    assert_eq!(
        (v.key.as_str(), v.version, v.status),
        ("triage", 1, Status::Draft)
    );
    assert_eq!(v.change, Change::Created);
    assert_eq!(store.experiment("triage").expect("found"), v);
    assert_eq!(store.experiment_version("triage", 1).expect("found"), v);
    assert_eq!(store.versions("triage").expect("found"), vec![v.clone()]);

    store
        .create_experiment(fixed_spec("billing"), T0)
        .expect("created");
    let keys: Vec<String> = store
        .experiments()
        .expect("listed")
        .into_iter()
        .map(|v| v.key)
        .collect();
    assert_eq!(keys, vec!["billing", "triage"]);

    let again = store.create_experiment(fixed_spec("triage"), T0 + 5);
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");

    let epochs = store.epochs("triage").expect("found");
    assert_eq!(epochs.len(), 1);
    assert_eq!((epochs[0].epoch, epochs[0].reason.as_str()), (0, "created"));
    assert_eq!(epochs[0].started_at, T0);

    let period = store.current_period("triage").expect("found");
    assert_eq!(period, initial_period(&fixed_spec("triage"), T0));
    assert_eq!(store.periods("triage").expect("found"), vec![period]);
    assert_eq!(store.bandit_state("triage").expect("found"), None);

    assert!(not_found(store.experiment("nope")));
    assert!(not_found(store.experiment_version("triage", 2)));
    assert!(not_found(store.versions("nope")));
    assert!(not_found(store.epochs("nope")));
    assert!(not_found(store.current_period("nope")));
    assert!(not_found(store.aggregates("nope", 0)));
}

fn updating_checks_the_expected_version_and_opens_periods(store: &dyn Store) {
    store
        .create_experiment(fixed_spec("upd"), T0)
        .expect("created");
    // The hot path's read of the period in force (cached on disk stores) follows changes.
    assert_eq!(
        store
            .current_period_for_decision("upd")
            .expect("found")
            .period,
        0
    );
    let v2 = store
        .update_experiment(fixed_spec_weights("upd", 0.8), Some(1), T0 + 10)
        .expect("updated");
    assert_eq!((v2.version, v2.change.clone()), (2, Change::SpecUpdated));
    let stale = store.update_experiment(fixed_spec("upd"), Some(1), T0 + 20);
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    assert_eq!(store.experiment("upd").expect("found").version, 2);

    // New weights open period 1 with exactly those weights.
    let periods = store.periods("upd").expect("found");
    assert_eq!(periods.len(), 2);
    assert_eq!(periods[1].period, 1);
    assert_eq!(
        periods[1].weights,
        vec![("human".to_string(), 1.0 - 0.8), ("ai".to_string(), 0.8)]
    );
    assert_eq!(store.current_period("upd").expect("found").period, 1);
    assert_eq!(
        store.current_period_for_decision("upd").expect("found"),
        periods[1]
    );

    // The same weights again: a new version, no new period.
    store
        .update_experiment(fixed_spec_weights("upd", 0.8), None, T0 + 30)
        .expect("updated");
    assert_eq!(store.periods("upd").expect("found").len(), 2);
    assert_eq!(store.versions("upd").expect("found").len(), 3);

    assert!(not_found(store.update_experiment(
        fixed_spec("other"),
        None,
        T0
    )));
}

fn lifecycle_transitions_are_versions(store: &dyn Store) {
    store
        .create_experiment(fixed_spec("life"), T0)
        .expect("created");
    let paused_from_draft = store.transition("life", Transition::Pause, None, T0 + 1);
    assert!(
        matches!(
            paused_from_draft,
            Err(StoreError::Domain(DomainError::Transition {
                from: Status::Draft,
                ..
            }))
        ),
        "{paused_from_draft:?}"
    );
    let steps = [
        (Transition::Start, Status::Running),
        (Transition::Pause, Status::Paused),
        (Transition::Start, Status::Running),
        (Transition::Stop, Status::Stopped),
    ];
    for (i, (t, status)) in steps.iter().enumerate() {
        let v = store
            .transition(
                "life",
                *t,
                Some("because"),
                T0 + 10 + i64::try_from(i).expect("small"),
            )
            .expect("allowed");
        assert_eq!(v.status, *status);
        assert_eq!(v.change, Change::Status(*t));
        assert_eq!(v.reason.as_deref(), Some("because"));
    }
    let statuses: Vec<Status> = store
        .versions("life")
        .expect("found")
        .into_iter()
        .map(|v| v.status)
        .collect();
    assert_eq!(
        statuses,
        vec![
            Status::Draft,
            Status::Running,
            Status::Paused,
            Status::Running,
            Status::Stopped
        ]
    );
    assert_eq!(
        store.experiment_version("life", 3).expect("found").status,
        Status::Paused
    );
    let restart = store.transition("life", Transition::Start, None, T0 + 99);
    assert!(matches!(restart, Err(StoreError::Domain(_))), "{restart:?}");
    let edit = store.update_experiment(fixed_spec("life"), None, T0 + 99);
    assert!(
        matches!(
            edit,
            Err(StoreError::Domain(DomainError::FrozenField { .. }))
        ),
        "{edit:?}"
    );
    assert!(not_found(store.transition(
        "nope",
        Transition::Start,
        None,
        T0
    )));
}

fn rebaselining_starts_epochs(store: &dyn Store) {
    running(store, "rb");
    let blank = store.rebaseline("rb", "  ", T0 + 5);
    assert!(matches!(blank, Err(StoreError::Invalid(_))), "{blank:?}");
    let e1 = store
        .rebaseline("rb", "drift in cycle time", T0 + 10)
        .expect("rebaselined");
    assert_eq!(
        (e1.epoch, e1.reason.as_str(), e1.started_at),
        (1, "drift in cycle time", T0 + 10)
    );
    let e2 = store
        .rebaseline("rb", "new model", T0 + 20)
        .expect("rebaselined");
    assert_eq!(e2.epoch, 2);
    let epochs: Vec<u64> = store
        .epochs("rb")
        .expect("found")
        .into_iter()
        .map(|e| e.epoch)
        .collect();
    assert_eq!(epochs, vec![0, 1, 2]);
    let current = store.experiment("rb").expect("found");
    assert_eq!(current.change, Change::Rebaselined { epoch: 2 });
    assert_eq!(current.version, e2.version);
    assert!(not_found(store.rebaseline("nope", "why", T0)));

    // Outcomes may now name epoch 2, not 3.
    store
        .record_assignment(assignment("rb", "u1", "ai", 0.5))
        .expect("assigned");
    let mut o = outcome("rb", "e1", "u1", "ai", &[("resolved", 1.0)]);
    o.epoch = 3;
    let r = store.record_outcome(&fixed_spec("rb"), o.clone());
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    o.epoch = 2;
    assert_eq!(
        store
            .record_outcome(&fixed_spec("rb"), o)
            .expect("recorded"),
        Recorded::Accepted
    );
    assert_eq!(store.arm_counters("rb", 2).expect("found").len(), 1);
    assert!(store.arm_counters("rb", 0).expect("found").is_empty());
}

fn first_assignment_wins_and_tasks_are_indexed(store: &dyn Store) {
    running(store, "asg");
    let first = assignment("asg", "u1", "ai", 0.5);
    assert_eq!(
        store.record_assignment(first.clone()).expect("stored"),
        first
    );
    let mut second = assignment("asg", "u1", "human", 0.5);
    second.assignment_id = "other".into();
    assert_eq!(store.record_assignment(second).expect("answered"), first);
    assert_eq!(
        store.assignment("asg", "u1").expect("read"),
        Some(first.clone())
    );
    assert_eq!(
        store.assignment_by_task("asg", "u1").expect("read"),
        Some(first.clone())
    );
    assert_eq!(store.assignment("asg", "u2").expect("read"), None);
    assert_eq!(store.assignment_by_task("asg", "t9").expect("read"), None);

    // A returning unit with a new task: the task now points at the unit's assignment.
    let mut again = assignment("asg", "u1", "ai", 0.5);
    again.task_id = "t2".into();
    assert_eq!(store.record_assignment(again).expect("answered"), first);
    assert_eq!(
        store.assignment_by_task("asg", "t2").expect("read"),
        Some(first.clone())
    );

    // A task that belongs to u1 cannot be claimed by u3: neither one it brought later, nor
    // its own id, which it got as its task by default.
    for task in ["t2", "u1"] {
        let mut thief = assignment("asg", "u3", "ai", 0.5);
        thief.task_id = task.into();
        let r = store.record_assignment(thief);
        assert!(matches!(r, Err(StoreError::Conflict(_))), "{task}: {r:?}");
        assert_eq!(store.assignment("asg", "u3").expect("read"), None);
    }

    // A unit whose task was another id does not own the task of its own id: u5 may take it,
    // and then u4 cannot bring it back as a new task.
    let mut u4 = assignment("asg", "u4", "human", 0.5);
    u4.task_id = "t4".into();
    store.record_assignment(u4.clone()).expect("stored");
    assert_eq!(store.assignment_by_task("asg", "u4").expect("read"), None);
    let mut u5 = assignment("asg", "u5", "ai", 0.5);
    u5.task_id = "u4".into();
    assert_eq!(store.record_assignment(u5.clone()).expect("stored"), u5);
    assert_eq!(
        store.assignment_by_task("asg", "u4").expect("read"),
        Some(u5.clone())
    );
    let mut back = u4.clone();
    back.task_id = "u4".into();
    let r = store.record_assignment(back);
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");

    let counts = store.assignment_counts("asg", 0).expect("found");
    let counts: Vec<_> = counts
        .iter()
        .map(|c| (c.period, c.arm.as_str(), c.count))
        .collect();
    assert_eq!(counts, vec![(0, "ai", 2), (0, "human", 1)]);
}

/// Records through `record_assignment_then` and waits on its callback.
fn record_then(
    store: &dyn Store,
    a: liftlab_domain::Assignment,
) -> Result<liftlab_domain::Assignment, StoreError> {
    let (tx, rx) = std::sync::mpsc::channel();
    store.record_assignment_then(
        a,
        Box::new(move |answer| {
            tx.send(answer).expect("the test waits for the answer");
        }),
    );
    rx.recv().expect("the callback is called")
}

fn the_hot_path_api_answers_as_the_blocking_one(store: &dyn Store) {
    running(store, "hot");
    let period = store.current_period_for_decision("hot").expect("in force");
    assert_eq!(period, store.current_period("hot").expect("in force"));
    assert!(not_found(store.current_period_for_decision("nope")));

    assert_eq!(
        store.assignment_if_durable("hot", "u1").expect("read"),
        None
    );
    let first = assignment("hot", "u1", "ai", 0.5);
    assert_eq!(record_then(store, first.clone()).expect("stored"), first);
    // Once the callback has answered, the write is durable: the non-waiting read sees it.
    assert_eq!(
        store.assignment_if_durable("hot", "u1").expect("read"),
        Some(first.clone())
    );
    let mut second = assignment("hot", "u1", "human", 0.5);
    second.assignment_id = "other".into();
    assert_eq!(record_then(store, second).expect("answered"), first);

    let mut thief = assignment("hot", "u2", "ai", 0.5);
    thief.task_id = "u1".into();
    assert!(matches!(
        record_then(store, thief),
        Err(StoreError::Conflict(_))
    ));
    let mut bad = assignment("hot", "u3", "nope", 0.5);
    bad.task_id = "t3".into();
    assert!(matches!(
        record_then(store, bad),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.assignment("hot", "u3").expect("read"), None);
}

fn assignment_requests_are_validated(store: &dyn Store) {
    store
        .create_experiment(fixed_spec("val"), T0)
        .expect("created");
    let draft_entry = store.record_assignment(assignment("val", "u1", "ai", 0.5));
    assert!(
        matches!(draft_entry, Err(StoreError::Invalid(_))),
        "{draft_entry:?}"
    );
    let mut outside = assignment("val", "u1", "human", 1.0);
    outside.in_experiment = false;
    assert_eq!(
        store.record_assignment(outside.clone()).expect("stored"),
        outside
    );
    assert!(store.assignment_counts("val", 0).expect("found").is_empty());

    store
        .transition("val", Transition::Start, None, T0 + 1)
        .expect("started");
    let cases = [
        assignment("val", "u2", "robot", 0.5),
        assignment("val", "", "ai", 0.5),
        assignment("val", &"x".repeat(257), "ai", 0.5),
        assignment("val", "u2", "ai", 0.0),
        assignment("val", "u2", "ai", 1.5),
        assignment("val", "u2", "ai", f64::NAN),
        {
            let mut a = assignment("val", "u2", "ai", 0.5);
            a.period = 1;
            a
        },
        {
            let mut a = assignment("val", "u2", "ai", 0.5);
            a.epoch = 1;
            a
        },
        {
            let mut a = assignment("val", "u2", "ai", 0.5);
            a.task_id = String::new();
            a
        },
    ];
    for a in cases {
        let r = store.record_assignment(a.clone());
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{a:?} gave {r:?}");
    }
    assert_eq!(store.assignment("val", "u2").expect("read"), None);
    assert!(not_found(
        store.record_assignment(assignment("nope", "u1", "ai", 0.5))
    ));
}

fn batch_assignments_answer_per_item(store: &dyn Store) {
    running(store, "batch");
    let results = store
        .record_assignments(vec![
            assignment("batch", "u1", "ai", 0.5),
            assignment("batch", "u2", "robot", 0.5),
            assignment("batch", "u1", "human", 0.5),
            assignment("batch", "u3", "human", 0.5),
        ])
        .expect("the batch commits");
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].as_ref().expect("stored").arm, "ai");
    assert!(matches!(results[1], Err(StoreError::Invalid(_))));
    assert_eq!(
        results[2].as_ref().expect("answered").arm,
        "ai",
        "first write wins within a batch"
    );
    assert_eq!(results[3].as_ref().expect("stored").arm, "human");
    let mut counts: Vec<(String, u64)> = store
        .assignment_counts("batch", 0)
        .expect("found")
        .into_iter()
        .map(|c| (c.arm, c.count))
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        vec![("ai".to_string(), 1), ("human".to_string(), 1)]
    );
}

fn outcomes_are_idempotent_and_counted(store: &dyn Store) {
    running(store, "idem");
    let spec = fixed_spec("idem");
    store
        .record_assignment(assignment("idem", "u1", "ai", 0.5))
        .expect("assigned");
    let o = outcome(
        "idem",
        "ev-1",
        "u1",
        "ai",
        &[("resolved", 1.0), ("minutes", 12.0)],
    );
    assert_eq!(
        store.record_outcome(&spec, o.clone()).expect("ok"),
        Recorded::Accepted
    );
    assert_eq!(
        store.record_outcome(&spec, o.clone()).expect("ok"),
        Recorded::Duplicate
    );
    let mut changed = o.clone();
    changed.metrics.insert("minutes".into(), 99.0);
    assert_eq!(
        store.record_outcome(&spec, changed).expect("ok"),
        Recorded::Duplicate,
        "the event id alone decides"
    );
    let o2 = outcome("idem", "ev-2", "u1", "ai", &[("minutes", 3.0)]);
    assert_eq!(
        store.record_outcome(&spec, o2.clone()).expect("ok"),
        Recorded::Accepted
    );

    let counters = store.arm_counters("idem", 0).expect("found");
    assert_eq!(counters.len(), 1);
    assert_eq!(
        (
            counters[0].arm.as_str(),
            counters[0].units,
            counters[0].outcomes
        ),
        ("ai", 1, 2)
    );
    assert_eq!(counters[0].handled_by, BTreeMap::from([(HandledBy::Ai, 2)]));

    let log: Vec<_> = store
        .outcomes("idem")
        .expect("found")
        .collect::<Result<_, _>>()
        .expect("decodes");
    assert_eq!(log, vec![o, o2]);

    let rows = store.unit_rows("idem", 0).expect("found");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcomes, 2);
    assert_eq!(rows[0].metrics["minutes"].value, 15.0);
}

fn a_rejected_outcome_changes_nothing(store: &dyn Store) {
    running(store, "rej");
    let spec = fixed_spec("rej");
    store
        .record_assignment(assignment("rej", "u1", "ai", 0.5))
        .expect("assigned");
    let good = outcome("rej", "ok", "u1", "ai", &[("resolved", 1.0)]);
    store.record_outcome(&spec, good).expect("recorded");
    let before = (
        store.aggregates("rej", 0).expect("found"),
        store.arm_counters("rej", 0).expect("found"),
        store.verify().expect("verifies").records,
    );
    let bad = [
        outcome("rej", "b1", "u1", "human", &[("resolved", 1.0)]),
        outcome("rej", "b2", "u9", "ai", &[("resolved", 1.0)]),
        outcome("rej", "b3", "u1", "ai", &[]),
        outcome("rej", "b4", "u1", "ai", &[("minutes", f64::INFINITY)]),
        outcome("rej", "", "u1", "ai", &[("resolved", 1.0)]),
    ];
    for o in bad {
        let r = store.record_outcome(&spec, o.clone());
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{o:?} gave {r:?}");
    }
    let wrong_spec = store.record_outcome(
        &fixed_spec("other"),
        outcome("rej", "b5", "u1", "ai", &[("resolved", 1.0)]),
    );
    assert!(
        matches!(wrong_spec, Err(StoreError::Invalid(_))),
        "{wrong_spec:?}"
    );
    let after = (
        store.aggregates("rej", 0).expect("found"),
        store.arm_counters("rej", 0).expect("found"),
        store.verify().expect("verifies").records,
    );
    assert_eq!(before, after);
    assert_eq!(store.outcomes("rej").expect("found").count(), 1);
    // A rejected event id is not burned: it can still be recorded once valid.
    let fixed = outcome("rej", "b1", "u1", "ai", &[("resolved", 0.0)]);
    assert_eq!(
        store.record_outcome(&spec, fixed).expect("ok"),
        Recorded::Accepted
    );
}

/// A unit, its arm, its propensity, and its events as (resolved, minutes).
type UnitEvents<'a> = (&'a str, &'a str, f64, &'a [(f64, f64)]);

fn aggregates_match_a_direct_computation(store: &dyn Store) {
    running(store, "agg");
    let spec = fixed_spec("agg");
    // Units, their arm and propensity, and their events (resolved, minutes).
    let units: [UnitEvents<'_>; 6] = [
        ("a1", "ai", 0.5, &[(1.0, 4.0), (0.0, 6.0)]),
        ("a22", "ai", 0.5, &[(1.0, 2.5)]),
        ("a333", "ai", 0.25, &[(1.0, 1.0), (1.0, 1.0), (0.0, 9.0)]),
        ("h1", "human", 0.5, &[(0.0, 30.0)]),
        ("h22", "human", 0.5, &[(1.0, 12.0), (1.0, 8.0)]),
        ("h333", "human", 0.75, &[(0.0, 20.0)]),
    ];
    let mut n = 0;
    for (unit, arm, p, events) in units {
        store
            .record_assignment(assignment("agg", unit, arm, p))
            .expect("assigned");
        for (resolved, minutes) in events {
            n += 1;
            let o = outcome(
                "agg",
                &format!("e{n}"),
                unit,
                arm,
                &[("resolved", *resolved), ("minutes", *minutes)],
            );
            assert_eq!(
                store.record_outcome(&spec, o).expect("ok"),
                Recorded::Accepted
            );
        }
    }
    let aggs: BTreeMap<_, _> = store
        .aggregates("agg", 0)
        .expect("found")
        .into_iter()
        .collect();
    for arm in ["ai", "human"] {
        let mine: Vec<_> = units.iter().filter(|u| u.1 == arm).collect();
        // Per-unit values: resolved is a mean, minutes a sum.
        let resolved: Vec<f64> = mine
            .iter()
            .map(|u| {
                u.3.iter().map(|e| e.0).sum::<f64>()
                    / f64::from(u32::try_from(u.3.len()).expect("small"))
            })
            .collect();
        let minutes: Vec<f64> = mine.iter().map(|u| u.3.iter().map(|e| e.1).sum()).collect();
        for (metric, values) in [("resolved", &resolved), ("minutes", &minutes)] {
            let key = liftlab_domain::AggKey {
                epoch: 0,
                arm: arm.into(),
                metric: metric.into(),
                scope: AggScope::Overall,
            };
            let agg = aggs.get(&key).unwrap_or_else(|| panic!("{key:?} exists"));
            let (mean, var) = mean_var(values);
            assert_eq!(agg.moments.n(), 3, "{key:?}");
            assert!(
                close(agg.moments.mean(), mean),
                "{key:?}: {} vs {mean}",
                agg.moments.mean()
            );
            assert!(
                close(agg.moments.variance(), var),
                "{key:?}: {} vs {var}",
                agg.moments.variance()
            );
            let ipw_weight: f64 = mine.iter().map(|u| 1.0 / u.2).sum();
            let ipw_sum: f64 = mine.iter().zip(values.iter()).map(|(u, y)| y / u.2).sum();
            assert!(close(agg.ipw_weight, ipw_weight), "{key:?}");
            assert!(close(agg.ipw_weighted_sum, ipw_sum), "{key:?}");

            // One allocation period placed every unit, so its scope holds the same units.
            let period_key = liftlab_domain::AggKey {
                scope: AggScope::Period(0),
                ..key.clone()
            };
            let period = aggs
                .get(&period_key)
                .unwrap_or_else(|| panic!("{period_key:?} exists"));
            assert_eq!(period.moments, agg.moments, "{period_key:?}");

            // Segments split the same units by region.
            for region in ["eu", "us"] {
                let in_region: Vec<f64> = mine
                    .iter()
                    .zip(values.iter())
                    .filter(|(u, _)| region_of(u.0) == region)
                    .map(|(_, v)| *v)
                    .collect();
                let seg_key = liftlab_domain::AggKey {
                    scope: AggScope::Segment {
                        attribute: "region".into(),
                        value: region.into(),
                    },
                    ..key.clone()
                };
                let seg = aggs
                    .get(&seg_key)
                    .unwrap_or_else(|| panic!("{seg_key:?} exists"));
                let (m, _) = mean_var(&in_region);
                assert_eq!(
                    seg.moments.n(),
                    u64::try_from(in_region.len()).expect("small")
                );
                assert!(close(seg.moments.mean(), m), "{seg_key:?}");
            }
        }
        // The day scope counts every event of the arm.
        let events: Vec<f64> = mine.iter().flat_map(|u| u.3.iter().map(|e| e.1)).collect();
        let day = aggs
            .get(&liftlab_domain::AggKey {
                epoch: 0,
                arm: arm.into(),
                metric: "minutes".into(),
                scope: AggScope::Day(1),
            })
            .expect("the day aggregate exists");
        assert_eq!(day.moments.n(), u64::try_from(events.len()).expect("small"));
        assert!(close(day.moments.mean(), mean_var(&events).0));
        // The hour scope (hour 24, in day 1) counts every event of the primary metric only.
        let hourly: Vec<(&String, &AggScope, u64)> = aggs
            .iter()
            .filter(|(k, _)| k.arm == arm && matches!(k.scope, AggScope::Hour(_)))
            .map(|(k, a)| (&k.metric, &k.scope, a.moments.n()))
            .collect();
        assert_eq!(
            hourly,
            vec![(
                &"resolved".to_string(),
                &AggScope::Hour(24),
                u64::try_from(events.len()).expect("small")
            )]
        );
    }
}

fn outcomes_of_units_outside_the_experiment_are_logged_only(store: &dyn Store) {
    running(store, "out");
    let spec = fixed_spec("out");
    let mut a = assignment("out", "u1", "human", 1.0);
    a.in_experiment = false;
    store.record_assignment(a).expect("stored");
    let o = outcome("out", "e1", "u1", "human", &[("resolved", 1.0)]);
    assert_eq!(
        store.record_outcome(&spec, o).expect("ok"),
        Recorded::Accepted
    );
    assert!(store.aggregates("out", 0).expect("found").is_empty());
    assert!(store.arm_counters("out", 0).expect("found").is_empty());
    assert_eq!(store.outcomes("out").expect("found").count(), 1);
    assert_eq!(store.unit_rows("out", 0).expect("found").len(), 1);
}

fn a_batch_counts_a_repeated_event_once(store: &dyn Store) {
    running(store, "dup");
    let spec = fixed_spec("dup");
    store
        .record_assignment(assignment("dup", "u1", "ai", 0.5))
        .expect("assigned");
    let o = outcome("dup", "e1", "u1", "ai", &[("minutes", 5.0)]);
    let results = store
        .record_outcomes(
            &spec,
            vec![
                o.clone(),
                o.clone(),
                outcome("dup", "e2", "u404", "ai", &[("minutes", 1.0)]),
                outcome("dup", "e3", "u1", "ai", &[("minutes", 2.0)]),
            ],
        )
        .expect("the batch commits");
    assert_eq!(results[0].as_ref().ok(), Some(&Recorded::Accepted));
    assert_eq!(results[1].as_ref().ok(), Some(&Recorded::Duplicate));
    assert!(matches!(results[2], Err(StoreError::Invalid(_))));
    assert_eq!(results[3].as_ref().ok(), Some(&Recorded::Accepted));
    let counters = store.arm_counters("dup", 0).expect("found");
    assert_eq!((counters[0].units, counters[0].outcomes), (1, 2));
    let again = store.record_outcomes(&spec, vec![o]).expect("commits");
    assert_eq!(again[0].as_ref().ok(), Some(&Recorded::Duplicate));
}

fn the_bandit_recomputes_and_opens_periods(store: &dyn Store) {
    let spec = thompson_spec("band", 5, 10);
    store.create_experiment(spec.clone(), T0).expect("created");
    store
        .transition("band", Transition::Start, None, T0 + 1)
        .expect("started");
    let state = store
        .bandit_state("band")
        .expect("found")
        .expect("a bandit");
    assert_eq!(state.total(), 0);
    let arms = ["human", "ai", "hybrid"];
    let mut rewards = 0u64;
    for i in 0..60u32 {
        let arm = arms[usize::try_from(i % 3).expect("small")];
        let unit = format!("u{i}");
        store
            .record_assignment(assignment("band", &unit, arm, 1.0 / 3.0))
            .expect("assigned");
        // The ai arm always resolves, the others never do.
        let reward = if arm == "ai" { 1.0 } else { 0.0 };
        let o = outcome_at(
            "band",
            &format!("e{i}"),
            &unit,
            arm,
            &[("resolved", reward)],
            T0 + 100 + i64::from(i),
        );
        store.record_outcome(&spec, o).expect("recorded");
        rewards += 1;
        assert_eq!(
            store.current_period_for_decision("band").expect("in force"),
            store.current_period("band").expect("in force"),
            "after reward {rewards}"
        );
    }
    let state = store
        .bandit_state("band")
        .expect("found")
        .expect("a bandit");
    assert_eq!(state.total(), rewards);
    let periods = store.periods("band").expect("found");
    // Warm-up is met after 15 rewards (5 per arm); recomputations then follow every 10.
    assert!(periods.len() >= 4, "{} periods", periods.len());
    for (i, p) in periods.iter().enumerate() {
        assert_eq!(p.period, u64::try_from(i).expect("small"));
        let sum: f64 = p.weights.iter().map(|w| w.1).sum();
        assert!(close(sum, 1.0), "period {i} weights sum to {sum}");
        assert!(
            p.weights.iter().all(|w| w.1 >= 0.05 - 1e-12),
            "the floor holds in period {i}"
        );
    }
    let last = periods.last().expect("some");
    let ai = last.weights.iter().find(|w| w.0 == "ai").expect("ai").1;
    assert!(ai > 0.5, "the winning arm gets most traffic, got {ai}");
    assert_eq!(store.current_period("band").expect("found"), last.clone());
    let opened = store
        .audit("band", 0, 1000)
        .expect("found")
        .iter()
        .filter(|r| r.kind == AuditKind::PeriodOpened)
        .count();
    assert_eq!(opened, periods.len());
}

fn the_audit_chain_records_every_change_in_order(store: &dyn Store) {
    running(store, "aud");
    store
        .create_experiment(fixed_spec("other"), T0)
        .expect("created");
    let spec = fixed_spec("aud");
    store
        .record_assignment(assignment("aud", "u1", "ai", 0.5))
        .expect("assigned");
    store
        .record_assignment(assignment("aud", "u1", "ai", 0.5))
        .expect("answered");
    store
        .record_outcome(
            &spec,
            outcome("aud", "e1", "u1", "ai", &[("resolved", 1.0)]),
        )
        .expect("recorded");
    store
        .record_outcome(
            &spec,
            outcome("aud", "e1", "u1", "ai", &[("resolved", 1.0)]),
        )
        .expect("duplicate");
    store
        .rebaseline("aud", "why not", T0 + 50)
        .expect("rebaselined");

    let records = store.audit("aud", 0, 100).expect("found");
    let kinds: Vec<AuditKind> = records.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        vec![
            AuditKind::ExperimentCreated,
            AuditKind::PeriodOpened,
            AuditKind::StatusChanged,
            AuditKind::Assigned,
            AuditKind::OutcomeRecorded,
            AuditKind::Rebaselined,
        ]
    );
    assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(records.iter().all(|r| r.experiment == "aud"));
    let payload: serde_json::Value =
        serde_json::from_str(&records[3].payload).expect("the payload is JSON");
    assert_eq!(payload["unit_id"], "u1");

    // Paging: after the second record, two at a time.
    let page = store.audit("aud", records[1].seq, 2).expect("found");
    assert_eq!(page, records[2..4].to_vec());

    let report = store.verify().expect("verifies");
    // Two experiments of two records each at creation, plus four more changes.
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, 8);
    assert_eq!(report.first_bad, None);
}

fn rebuild_agrees_with_the_live_state(store: &dyn Store) {
    running(store, "reb");
    let spec = fixed_spec("reb");
    for i in 0..40u32 {
        let unit = format!("u{}", i % 13);
        let arm = if i % 13 % 2 == 0 { "ai" } else { "human" };
        store
            .record_assignment(assignment("reb", &unit, arm, 0.5))
            .expect("assigned");
        let o = outcome(
            "reb",
            &format!("e{i}"),
            &unit,
            arm,
            &[
                ("resolved", f64::from(i % 2)),
                ("minutes", f64::from(i) * 0.7),
            ],
        );
        store.record_outcome(&spec, o).expect("recorded");
    }
    let report = store.rebuild(RebuildMode::Check).expect("rebuilt");
    assert!(report.mismatches.is_empty(), "{:#?}", report.mismatches);
    assert_eq!(
        (report.experiments, report.outcomes, report.assignments),
        (1, 40, 13)
    );
    assert!(!report.replaced);
}

fn a_returning_unit_s_new_task_is_audited_and_rebuilt_without_mismatch(store: &dyn Store) {
    running(store, "ret");
    let spec = fixed_spec("ret");
    store
        .record_assignment(assignment("ret", "u1", "ai", 0.5))
        .expect("assigned");
    // The unit comes back twice with new tasks, once with one it already has, and its
    // outcomes arrive under every task.
    for task in ["t2", "t3", "t2", "u1"] {
        let mut again = assignment("ret", "u1", "human", 0.5);
        again.task_id = task.to_string();
        again.assigned_at = 2_000;
        assert_eq!(
            store.record_assignment(again).expect("answered").arm,
            "ai",
            "{task}"
        );
    }
    for (i, task) in ["u1", "t2", "t3"].into_iter().enumerate() {
        let mut o = outcome("ret", &format!("e{i}"), "u1", "ai", &[("resolved", 1.0)]);
        o.task_id = task.to_string();
        store.record_outcome(&spec, o).expect("recorded");
    }
    for task in ["u1", "t2", "t3"] {
        let found = store.assignment_by_task("ret", task).expect("read");
        assert_eq!(found.map(|a| a.unit_id), Some("u1".to_string()), "{task}");
    }

    let bound: Vec<serde_json::Value> = store
        .audit("ret", 0, 100)
        .expect("found")
        .into_iter()
        .filter(|r| r.kind == AuditKind::TaskBound)
        .map(|r| {
            assert_eq!(r.ts, 2_000);
            serde_json::from_str(&r.payload).expect("the payload is JSON")
        })
        .collect();
    assert_eq!(
        bound,
        vec![
            serde_json::json!({"task_id": "t2", "unit_id": "u1"}),
            serde_json::json!({"task_id": "t3", "unit_id": "u1"}),
        ]
    );
    assert!(store.verify().expect("verifies").ok);

    let check = store.rebuild(RebuildMode::Check).expect("rebuilt");
    assert!(check.mismatches.is_empty(), "{:#?}", check.mismatches);
    let repair = store.rebuild(RebuildMode::Replace).expect("rebuilt");
    assert!(repair.mismatches.is_empty(), "{:#?}", repair.mismatches);
    assert_eq!(
        store
            .assignment_by_task("ret", "t3")
            .expect("read")
            .map(|a| a.unit_id),
        Some("u1".to_string())
    );
}

fn closing_refuses_writes_but_keeps_reads(store: &dyn Store) {
    running(store, "bye");
    store.flush().expect("flushes");
    store.close().expect("closes");
    let r = store.create_experiment(fixed_spec("late"), T0);
    assert!(matches!(r, Err(StoreError::Closed)), "{r:?}");
    assert!(matches!(store.flush(), Err(StoreError::Closed)));
    assert_eq!(
        store.experiment("bye").expect("still readable").status,
        Status::Running
    );
}

fn drift_monitors_follow_outcomes_per_epoch(store: &dyn Store) {
    let mut doc = fixed_spec("drift").to_json();
    doc["drift"] = serde_json::json!({"metrics": ["minutes"]});
    let spec = liftlab_domain::ExperimentSpec::parse(&doc).expect("a spec with drift monitoring");
    store.create_experiment(spec.clone(), T0).expect("created");
    store
        .transition("drift", Transition::Start, None, T0 + 1)
        .expect("started");
    assert_eq!(store.drift_monitor("drift", 0).expect("found"), None);
    store
        .record_assignment(assignment("drift", "u1", "ai", 0.5))
        .expect("assigned");
    store
        .record_outcome(
            &spec,
            outcome("drift", "e1", "u1", "ai", &[("minutes", 3.0)]),
        )
        .expect("recorded");
    let first = store
        .drift_monitor("drift", 0)
        .expect("found")
        .expect("a monitor");
    store
        .record_outcome(
            &spec,
            outcome("drift", "e2", "u1", "ai", &[("minutes", 4.0)]),
        )
        .expect("recorded");
    let second = store
        .drift_monitor("drift", 0)
        .expect("found")
        .expect("a monitor");
    assert_ne!(first, second, "every outcome feeds the monitor");
    assert_eq!(store.drift_monitor("drift", 1).expect("found"), None);
    assert!(not_found(store.drift_monitor("nope", 0)));

    // Without drift settings no monitor is kept.
    running(store, "plain");
    store
        .record_assignment(assignment("plain", "u1", "ai", 0.5))
        .expect("assigned");
    store
        .record_outcome(
            &fixed_spec("plain"),
            outcome("plain", "e1", "u1", "ai", &[("minutes", 3.0)]),
        )
        .expect("recorded");
    assert_eq!(store.drift_monitor("plain", 0).expect("found"), None);
}

/// A unit, its arm, its covariate (`None`: not sent), and its events as (resolved, minutes).
type PairedUnit<'a> = (&'a str, &'a str, Option<f64>, &'a [(f64, f64)]);

/// Covariate and ratio pairs are stored under their own scopes, read back, and rebuilt.
fn paired_metrics_are_stored_and_rebuilt(store: &dyn Store) {
    let spec = paired_spec("pairs");
    store.create_experiment(spec.clone(), T0).expect("created");
    store
        .transition("pairs", Transition::Start, None, T0 + 1)
        .expect("started");
    let units: [PairedUnit<'_>; 6] = [
        ("a1", "ai", Some(10.0), &[(1.0, 12.0), (0.0, 90.0)]),
        ("a22", "ai", Some(25.5), &[(1.0, 30.0)]),
        ("a333", "ai", None, &[(0.0, 5.0)]),
        ("h1", "human", Some(40.0), &[(1.0, 41.0)]),
        ("h22", "human", Some(8.0), &[(0.0, 9.0), (1.0, 3.0)]),
        ("h333", "human", Some(16.0), &[(1.0, 20.0)]),
    ];
    let mut n = 0;
    for (unit, arm, estimate, events) in units {
        let mut a = assignment("pairs", unit, arm, 0.5);
        if let Some(e) = estimate {
            a.segments.insert("estimate".into(), e.to_string());
        }
        store.record_assignment(a).expect("assigned");
        for (resolved, minutes) in events {
            n += 1;
            let o = outcome(
                "pairs",
                &format!("e{n}"),
                unit,
                arm,
                &[("resolved", *resolved), ("minutes", *minutes)],
            );
            store.record_outcome(&spec, o).expect("recorded");
        }
    }
    let aggs: BTreeMap<AggKey, _> = store
        .aggregates("pairs", 0)
        .expect("found")
        .into_iter()
        .collect();
    for arm in ["ai", "human"] {
        let mine: Vec<_> = units.iter().filter(|u| u.1 == arm).collect();
        // Per unit: minutes summed after the cap of 60, resolved averaged.
        let minutes = |u: &PairedUnit<'_>| -> f64 { u.3.iter().map(|e| e.1.min(60.0)).sum() };
        let resolved = |u: &PairedUnit<'_>| -> f64 {
            u.3.iter().map(|e| e.0).sum::<f64>()
                / f64::from(u32::try_from(u.3.len()).expect("small"))
        };
        for (metric, pairs) in [
            (
                "minutes",
                mine.iter()
                    .map(|u| (minutes(u), u.2.unwrap_or(0.0)))
                    .collect::<Vec<_>>(),
            ),
            (
                "minutes_per_resolved",
                mine.iter().map(|u| (minutes(u), resolved(u))).collect(),
            ),
        ] {
            let moments = |scope| {
                aggs.get(&AggKey {
                    epoch: 0,
                    arm: arm.into(),
                    metric: metric.into(),
                    scope,
                })
                .unwrap_or_else(|| panic!("{arm} {metric} has its scopes"))
                .moments
            };
            let got = co_moments(
                &moments(AggScope::Overall),
                &moments(AggScope::Paired),
                &moments(AggScope::PairSum),
            );
            let xs: Vec<f64> = pairs.iter().map(|p| p.0).collect();
            let ys: Vec<f64> = pairs.iter().map(|p| p.1).collect();
            let ((mx, _), (my, _)) = (mean_var(&xs), mean_var(&ys));
            let covariance = pairs.iter().map(|(x, y)| (x - mx) * (y - my)).sum::<f64>() / 2.0;
            assert_eq!(got.n(), 3, "{arm} {metric}");
            assert!(close(got.mean_x(), mx), "{arm} {metric}");
            assert!(close(got.mean_y(), my), "{arm} {metric}");
            assert!(
                close(got.covariance(), covariance),
                "{arm} {metric}: {} vs {covariance}",
                got.covariance()
            );
        }
    }
    let report = store.rebuild(RebuildMode::Check).expect("rebuilt");
    assert!(report.mismatches.is_empty(), "{:#?}", report.mismatches);
}

/// `auto_pause_on_harm`: the outcome that completes a harm check showing the guardrail harmed
/// pauses the experiment in its own batch; later outcomes of the batch are still recorded.
fn a_harmful_batch_pauses_the_experiment_in_the_same_commit(store: &dyn Store) {
    let mut doc = fixed_spec("harm").to_json();
    doc["metrics"][1] = serde_json::json!({"key": "escalated", "kind": "binary",
        "direction": "decrease", "role": "guardrail"});
    doc["analysis"] = serde_json::json!({"auto_pause_on_harm": true});
    let spec = liftlab_domain::ExperimentSpec::parse(&doc).expect("a spec that pauses on harm");
    store.create_experiment(spec.clone(), T0).expect("created");
    store
        .transition("harm", Transition::Start, None, T0 + 1)
        .expect("started");
    let n = 1600u64;
    let units: Vec<(String, &str)> = (0..n)
        .map(|i| (format!("u{i}"), if i % 2 == 0 { "human" } else { "ai" }))
        .collect();
    let assigned = store
        .record_assignments(
            units
                .iter()
                .map(|(u, arm)| assignment("harm", u, arm, 0.5))
                .collect(),
        )
        .expect("a batch");
    assert!(assigned.iter().all(Result::is_ok));
    // The AI arm escalates 4 cases in 10, the baseline 1 in 10.
    let outcomes = units
        .iter()
        .enumerate()
        .map(|(i, (u, arm))| {
            let bad = if *arm == "ai" {
                (i / 2) % 10 < 4
            } else {
                (i / 2) % 10 < 1
            };
            let e = if bad { 1.0 } else { 0.0 };
            outcome("harm", &format!("e{i}"), u, arm, &[("escalated", e)])
        })
        .collect();
    let results = store.record_outcomes(&spec, outcomes).expect("a batch");
    assert!(results.iter().all(|r| matches!(r, Ok(Recorded::Accepted))));

    let version = store.experiment("harm").expect("found");
    assert_eq!(version.status, Status::Paused);
    let reason = version.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("guardrail escalated is significantly worse in arm ai"),
        "{reason}"
    );
    let records = store.audit("harm", 0, 10_000).expect("found");
    let paused_at = records
        .iter()
        .position(|r| r.kind == AuditKind::StatusChanged && r.payload.contains("guardrail"))
        .expect("the pause is in the audit chain");
    let before = records[..paused_at]
        .iter()
        .filter(|r| r.kind == AuditKind::OutcomeRecorded)
        .count() as u64;
    assert_eq!(before % liftlab_domain::record::HARM_CHECK_EVERY, 0);
    assert!(before < n, "paused within the batch");
    let counted: u64 = store
        .arm_counters("harm", 0)
        .expect("found")
        .iter()
        .map(|c| c.outcomes)
        .sum();
    assert_eq!(counted, n, "the rest of the batch is recorded too");
    // Paused: no new unit enters.
    assert!(store
        .record_assignment(assignment("harm", "late", "ai", 0.5))
        .is_err());
    assert!(store.verify().expect("verifies").ok);
}
