//! Import: a chain of audit records as the schema-7 store wrote them (kinds, and payloads that are the JSON of the domain's records) becomes a log whose views equal those of the same operations done live.
//!
//! The chain is made by running operations on a `MemStore`: its audit records carry the
//! payloads the schema-7 store wrote (`serde_json` of the same `ExperimentVersion`,
//! `AllocationPeriod`, `Assignment`, `Outcome`, `Epoch` and `TaskBinding` values). The
//! schema-7 store wrote the period a bandit's outcome opened *before* the outcome; the test
//! puts those records back in that order before importing.

mod common;

use common::*;
use liftlab_domain::Transition;
use liftlab_store::{AuditKind, AuditRecord, MemStore, RebuildMode, Store};

const T0: i64 = 1_700_000_000_000;

fn history(store: &dyn Store) {
    let spec = thompson_spec("band", 2, 3);
    store.create_experiment(spec.clone(), T0).expect("created");
    store
        .create_experiment(fixed_spec("alpha"), T0)
        .expect("created");
    for key in ["band", "alpha"] {
        store
            .transition(key, Transition::Start, None, T0 + 1)
            .expect("started");
    }
    let arms = ["human", "ai", "hybrid"];
    for i in 0..20u32 {
        let arm = arms[usize::try_from(i % 3).expect("small")];
        let unit = format!("u{i}");
        let mut a = assignment("band", &unit, arm, 1.0 / 3.0);
        a.assignment_id = format!("{:032x}", 77 * u128::from(i) + 5);
        store.record_assignment(a).expect("assigned");
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
    }
    let alpha = fixed_spec("alpha");
    for i in 0..6u32 {
        let unit = format!("a{i}");
        let arm = if i % 2 == 0 { "ai" } else { "human" };
        store
            .record_assignment(assignment("alpha", &unit, arm, 0.5))
            .expect("assigned");
        let mut o = outcome("alpha", &format!("x{i}"), &unit, arm, &[("minutes", 2.5)]);
        o.handled_by = Some(liftlab_domain::HandledBy::Human);
        store.record_outcome(&alpha, o).expect("recorded");
    }
    let mut back = assignment("alpha", "a1", "ai", 0.5);
    back.task_id = "t-back".into();
    store.record_assignment(back).expect("bound");
    store
        .rebaseline("alpha", "new model", T0 + 500)
        .expect("rebaselined");
    store
        .update_experiment(fixed_spec_weights("alpha", 0.7), None, T0 + 600)
        .expect("updated");
}

/// The schema-7 order: the records an outcome caused come before it.
fn schema_7_order(records: Vec<AuditRecord>) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = Vec::new();
    let mut i = 0;
    while i < records.len() {
        let r = &records[i];
        let mut j = i + 1;
        if r.kind == AuditKind::OutcomeRecorded {
            while j < records.len()
                && records[j].kind == AuditKind::PeriodOpened
                && records[j].experiment == r.experiment
                && records[j].ts == r.ts
            {
                j += 1;
            }
        }
        out.extend(records[i + 1..j].iter().cloned());
        out.push(r.clone());
        i = j;
    }
    out
}

#[test]
fn an_imported_chain_gives_the_views_and_records_of_the_live_operations() {
    let live = MemStore::new();
    history(&live);
    let records = live.audit_log(0, 10_000).expect("the chain");
    let moved = schema_7_order(records.clone());
    assert_ne!(moved, records, "the history has periods opened by outcomes");

    let imported = MemStore::new();
    assert_eq!(
        imported.import(moved).expect("imports"),
        records.len() as u64
    );
    let again = imported.audit_log(0, 10_000).expect("the chain");
    assert_eq!(
        again, records,
        "the same records, hashes included, in fold order"
    );
    assert!(imported.verify().expect("verifies").ok);
    assert!(imported
        .rebuild(RebuildMode::Check)
        .expect("rebuilds")
        .mismatches
        .is_empty());
    assert_eq!(
        imported.experiments().expect("reads"),
        live.experiments().expect("reads")
    );
    for key in ["band", "alpha"] {
        assert_eq!(
            imported.versions(key).expect("reads"),
            live.versions(key).expect("reads"),
            "{key}"
        );
        assert_eq!(
            imported.periods(key).expect("reads"),
            live.periods(key).expect("reads"),
            "{key}"
        );
        assert_eq!(
            imported.epochs(key).expect("reads"),
            live.epochs(key).expect("reads"),
            "{key}"
        );
        assert_eq!(
            imported.bandit_state(key).expect("reads"),
            live.bandit_state(key).expect("reads"),
            "{key}"
        );
        for epoch in 0..2 {
            assert_eq!(
                imported.aggregates(key, epoch).expect("reads"),
                live.aggregates(key, epoch).expect("reads")
            );
            assert_eq!(
                imported.arm_counters(key, epoch).expect("reads"),
                live.arm_counters(key, epoch).expect("reads")
            );
            assert_eq!(
                imported.assignment_counts(key, epoch).expect("reads"),
                live.assignment_counts(key, epoch).expect("reads")
            );
            assert_eq!(
                imported.unit_rows(key, epoch).expect("reads"),
                live.unit_rows(key, epoch).expect("reads")
            );
        }
    }
    assert_eq!(
        imported
            .assignment_by_task("alpha", "t-back")
            .expect("reads"),
        live.assignment_by_task("alpha", "t-back").expect("reads")
    );
}

/// A payload that is not what its kind says is refused, naming the record.
#[test]
fn an_undecodable_payload_is_refused() {
    let live = MemStore::new();
    history(&live);
    let mut records = live.audit_log(0, 10_000).expect("the chain");
    records[5].payload = "{\"not\": \"an assignment\"}".to_string();
    let err = MemStore::new().import(records).expect_err("refused");
    assert!(err.to_string().contains('6'), "{err}");
}
