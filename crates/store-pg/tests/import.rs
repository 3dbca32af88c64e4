//! `PgStore::import`: a sled data directory copied into an empty database reads back the same through every method of the trait.

use liftlab_domain::{Assignment, ExperimentSpec, HandledBy, Outcome, Transition};
use liftlab_store::{RebuildMode, SledStore, Store};
use liftlab_store_pg::PgStore;

const T0: i64 = 1_700_000_000_000;

fn spec(doc: serde_json::Value) -> ExperimentSpec {
    ExperimentSpec::parse(&doc).expect("a valid spec")
}

fn assignment(exp: &str, unit: &str, task: &str, arm: &str, period: u64) -> Assignment {
    Assignment {
        experiment: exp.into(),
        unit_id: unit.into(),
        task_id: task.into(),
        arm: arm.into(),
        in_experiment: true,
        version: 2,
        assignment_id: format!("id-{unit}"),
        propensity: 0.5,
        period,
        epoch: 0,
        segments: Default::default(),
        assigned_at: T0 + 10,
    }
}

fn outcome(exp: &str, event: &str, unit: &str, arm: &str, metric: &str, v: f64, i: i64) -> Outcome {
    Outcome {
        event_id: event.into(),
        experiment: exp.into(),
        task_id: unit.into(),
        unit_id: unit.into(),
        arm: arm.into(),
        epoch: 0,
        ts: T0 + 100 + i,
        metrics: [(metric.to_string(), v)].into_iter().collect(),
        handled_by: Some(HandledBy::Ai),
        model_version: None,
        attributes: Default::default(),
    }
}

/// Writes a little of everything: two experiments (fixed and Thompson), returning units with
/// new tasks, outcomes that open bandit periods, and a re-baseline.
fn fill(store: &dyn Store) {
    let fixed = spec(liftlab_testkit::spec::fixed("fx"));
    let bandit = spec(liftlab_testkit::spec::bandit("th"));
    for s in [&fixed, &bandit] {
        store.create_experiment(s.clone(), T0).expect("created");
        store
            .transition(s.key(), Transition::Start, None, T0 + 1)
            .expect("started");
    }
    for u in 0..30u32 {
        let arm = if u % 2 == 0 { "ai" } else { "human" };
        let unit = format!("u{u}");
        let task = if u % 5 == 0 {
            format!("t{u}")
        } else {
            unit.clone()
        };
        store
            .record_assignment(assignment("fx", &unit, &task, arm, 0))
            .expect("assigned");
        let o = outcome(
            "fx",
            &format!("e{u}"),
            &unit,
            arm,
            "minutes",
            f64::from(u) * 1.5,
            u.into(),
        );
        store.record_outcome(&fixed, o).expect("recorded");
    }
    let mut again = assignment("fx", "u1", "t-again", "human", 0);
    again.assignment_id = "other".into();
    store.record_assignment(again).expect("answered");
    let arms = ["human", "model-a", "model-b"];
    for u in 0..40u32 {
        let arm = arms[usize::try_from(u % 3).expect("small")];
        let unit = format!("b{u}");
        let period = store.current_period("th").expect("a period").period;
        let mut a = assignment("th", &unit, &unit, arm, period);
        a.propensity = 1.0 / 3.0;
        a.version = 2;
        store.record_assignment(a).expect("assigned");
        let reward = if arm == "model-a" { 1.0 } else { 0.0 };
        let o = outcome(
            "th",
            &format!("r{u}"),
            &unit,
            arm,
            "resolved",
            reward,
            u.into(),
        );
        store.record_outcome(&bandit, o).expect("recorded");
    }
    store
        .rebaseline("fx", "a new process", T0 + 5_000)
        .expect("rebaselined");
}

#[test]
fn a_sled_directory_reads_the_same_after_import() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let sled = SledStore::open(dir.path()).expect("sled opens");
    fill(&sled);
    let url = liftlab_testkit::postgres::fresh_database();
    let pg = PgStore::open(&url).expect("pg opens");
    let report = pg.import(&sled).expect("imports");
    assert_eq!(
        (report.experiments, report.assignments, report.outcomes),
        (2, 70, 70)
    );

    assert_eq!(
        pg.experiments().expect("pg"),
        sled.experiments().expect("sled")
    );
    for exp in ["fx", "th"] {
        assert_eq!(
            pg.versions(exp).expect("pg"),
            sled.versions(exp).expect("sled")
        );
        assert_eq!(pg.epochs(exp).expect("pg"), sled.epochs(exp).expect("sled"));
        assert_eq!(
            pg.periods(exp).expect("pg"),
            sled.periods(exp).expect("sled")
        );
        assert_eq!(
            pg.current_period(exp).expect("pg"),
            sled.current_period(exp).expect("sled")
        );
        assert_eq!(
            pg.bandit_state(exp).expect("pg"),
            sled.bandit_state(exp).expect("sled")
        );
        let log = |s: &dyn Store| -> Vec<Outcome> {
            s.outcomes(exp)
                .expect("a log")
                .collect::<Result<_, _>>()
                .expect("reads")
        };
        assert_eq!(log(&pg), log(&sled));
        assert_eq!(
            pg.audit(exp, 0, 10_000).expect("pg"),
            sled.audit(exp, 0, 10_000).expect("sled")
        );
        for epoch in 0..2 {
            assert_eq!(
                pg.aggregates(exp, epoch).expect("pg"),
                sled.aggregates(exp, epoch).expect("sled")
            );
            assert_eq!(
                pg.arm_counters(exp, epoch).expect("pg"),
                sled.arm_counters(exp, epoch).expect("sled")
            );
            assert_eq!(
                pg.assignment_counts(exp, epoch).expect("pg"),
                sled.assignment_counts(exp, epoch).expect("sled")
            );
            // Unit rows in unit order: each store lists them in its own key order.
            let by_unit = |mut rows: Vec<liftlab_domain::UnitRow>| {
                rows.sort_by(|a, b| a.unit_id.cmp(&b.unit_id));
                rows
            };
            assert_eq!(
                by_unit(pg.unit_rows(exp, epoch).expect("pg")),
                by_unit(sled.unit_rows(exp, epoch).expect("sled"))
            );
            assert_eq!(
                pg.drift_monitor(exp, epoch).expect("pg"),
                sled.drift_monitor(exp, epoch).expect("sled")
            );
        }
    }
    for id in ["u0", "u1", "t5", "t-again", "b7", "nobody"] {
        let exp = if id.starts_with('b') { "th" } else { "fx" };
        assert_eq!(
            pg.assignment_by_task(exp, id).expect("pg"),
            sled.assignment_by_task(exp, id).expect("sled"),
            "{id}"
        );
    }
    assert_eq!(
        pg.audit_log(0, 10_000).expect("pg"),
        sled.audit_log(0, 10_000).expect("sled")
    );
    let verified = pg.verify().expect("verifies");
    assert!(verified.ok, "{verified:?}");
    assert_eq!(verified.records, sled.verify().expect("sled").records);
    let rebuilt = pg.rebuild(RebuildMode::Check).expect("rebuilds");
    assert!(rebuilt.mismatches.is_empty(), "{:#?}", rebuilt.mismatches);

    // The copy goes on where the directory stopped: a retried event is a duplicate, and a
    // second import is refused rather than mixed in.
    let fixed = pg.experiment("fx").expect("there").spec;
    let dup = outcome("fx", "e3", "u3", "human", "minutes", 1.0, 3);
    assert_eq!(
        pg.record_outcome(&fixed, dup).expect("answered"),
        liftlab_store::Recorded::Duplicate
    );
    assert!(matches!(
        pg.import(&sled),
        Err(liftlab_store::StoreError::Conflict(_))
    ));
    sled.close().expect("closes");
}
