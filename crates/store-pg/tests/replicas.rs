//! Two `PgStore`s on one database, as two replicas: they open together, race on the same units and the same bandit, and agree.

use std::sync::Arc;

use liftlab_domain::{Assignment, ExperimentSpec, HandledBy, Outcome, Transition};
use liftlab_store::{AuditKind, RebuildMode, Recorded, Store};
use liftlab_store_pg::PgStore;

const T0: i64 = 1_700_000_000_000;

fn assignment(exp: &str, unit: &str, arm: &str, period: u64, id: &str) -> Assignment {
    Assignment {
        experiment: exp.into(),
        unit_id: unit.into(),
        task_id: unit.into(),
        arm: arm.into(),
        in_experiment: true,
        version: 2,
        assignment_id: id.into(),
        propensity: 1.0 / 3.0,
        period,
        epoch: 0,
        segments: Default::default(),
        assigned_at: T0 + 10,
    }
}

fn outcome(exp: &str, event: &str, unit: &str, arm: &str, reward: f64, ts: i64) -> Outcome {
    Outcome {
        event_id: event.into(),
        experiment: exp.into(),
        task_id: unit.into(),
        unit_id: unit.into(),
        arm: arm.into(),
        epoch: 0,
        ts,
        metrics: [("resolved".to_string(), reward)].into_iter().collect(),
        handled_by: Some(HandledBy::Ai),
        model_version: None,
        attributes: Default::default(),
    }
}

#[test]
fn two_stores_on_one_database_agree_under_races() {
    let url = liftlab_testkit::postgres::fresh_database();
    // Both open (and migrate) at once.
    let opening: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::open(&url).expect("opens"))
        })
        .collect();
    let stores: Vec<Arc<PgStore>> = opening
        .into_iter()
        .map(|t| Arc::new(t.join().expect("an opening thread")))
        .collect();
    let spec = ExperimentSpec::parse(&liftlab_testkit::spec::bandit("race")).expect("a spec");
    stores[0]
        .create_experiment(spec.clone(), T0)
        .expect("created");
    stores[1]
        .transition("race", Transition::Start, None, T0 + 1)
        .expect("started through the other store");

    // Four threads, two per store, each assign every unit (with its own assignment id) and
    // record each unit's outcome under the same event id: first write wins everywhere.
    let arms = ["human", "model-a", "model-b"];
    const UNITS: u32 = 120;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (store, spec) = (Arc::clone(&stores[t % 2]), spec.clone());
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                for u in 0..UNITS {
                    let unit = format!("u{u}");
                    let arm = arms[usize::try_from(u % 3).expect("small")];
                    let a = assignment("race", &unit, arm, 0, &format!("t{t}-{u}"));
                    let stored = store.record_assignment(a).expect("assigned");
                    let reward = if stored.arm == "model-a" { 1.0 } else { 0.0 };
                    let o = outcome(
                        "race",
                        &format!("e{u}"),
                        &unit,
                        &stored.arm,
                        reward,
                        T0 + 100 + i64::from(u),
                    );
                    let recorded = store.record_outcome(&spec, o).expect("recorded");
                    answers.push((stored, recorded));
                }
                answers
            })
        })
        .collect();
    let answers: Vec<Vec<(Assignment, Recorded)>> = threads
        .into_iter()
        .map(|t| t.join().expect("a racing thread"))
        .collect();
    for u in 0..usize::try_from(UNITS).expect("small") {
        let first = &answers[0][u].0;
        assert!(
            answers.iter().all(|a| a[u].0 == *first),
            "unit {u} got one assignment"
        );
        let accepted = answers
            .iter()
            .filter(|a| a[u].1 == Recorded::Accepted)
            .count();
        assert_eq!(accepted, 1, "event e{u} was accepted exactly once");
    }

    // The bandit saw each outcome once, and its periods were opened once each, in order.
    let (a, b) = (&stores[0], &stores[1]);
    let bandit = a.bandit_state("race").expect("read").expect("a bandit");
    assert_eq!(bandit.total(), u64::from(UNITS));
    let periods = a.periods("race").expect("read");
    assert!(periods.len() >= 3, "{} periods", periods.len());
    for (i, p) in periods.iter().enumerate() {
        assert_eq!(p.period, u64::try_from(i).expect("small"));
    }
    let opened = a
        .audit("race", 0, 10_000)
        .expect("read")
        .iter()
        .filter(|r| r.kind == AuditKind::PeriodOpened)
        .count();
    assert_eq!(opened, periods.len());

    // Both read the same views, before and after compaction, and the log replays to them.
    let views = |s: &PgStore| {
        (
            s.aggregates("race", 0).expect("read"),
            s.arm_counters("race", 0).expect("read"),
            s.assignment_counts("race", 0).expect("read"),
            s.unit_rows("race", 0).expect("read"),
        )
    };
    let before = views(a);
    assert_eq!(views(b), before);
    b.compact().expect("compacts");
    a.compact().expect("compacts");
    // Folding applies the same changes in the same order as a read does: equal to the bit.
    let after = views(a);
    assert_eq!(after, before);
    let counters = &after.1;
    assert_eq!(
        counters.iter().map(|c| c.outcomes).sum::<u64>(),
        u64::from(UNITS)
    );
    let verified = a.verify().expect("verifies");
    assert!(verified.ok, "{verified:?}");
    let rebuilt = b.rebuild(RebuildMode::Check).expect("rebuilds");
    assert!(rebuilt.mismatches.is_empty(), "{:#?}", rebuilt.mismatches);
}
