//! Bytes on disk per unit: 20,000 new units, each with one assignment and one two-metric outcome, everything in the data directory counted after close.
//!
//! Run: `cargo run --release -p liftlab-store --example disk_per_unit [UNITS]`. Units are
//! assigned and their outcomes recorded in batches of 256 (as group commit takes them), with
//! 32-hex-digit assignment ids and a segment attribute, as the server writes them.

#[path = "../tests/common/mod.rs"]
mod common;

use liftlab_domain::Transition;
use liftlab_store::{SledStore, Store};

fn du(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .expect("a readable directory")
        .map(|e| {
            let e = e.expect("an entry");
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                du(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

fn main() {
    let units: u32 = std::env::args()
        .nth(1)
        .map_or(20_000, |s| s.parse().expect("a number of units"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SledStore::open(dir.path()).expect("opens");
    let spec = common::fixed_spec("disk");
    store.create_experiment(spec.clone(), 1).expect("created");
    store
        .transition("disk", Transition::Start, None, 2)
        .expect("started");
    let mut i = 0;
    while i < units {
        let ids: Vec<u32> = (i..(i + 256).min(units)).collect();
        let assignments = ids
            .iter()
            .map(|n| {
                let arm = if n % 2 == 0 { "ai" } else { "human" };
                let mut a = common::assignment("disk", &format!("user-{n:08}"), arm, 0.5);
                a.assignment_id = format!("{:032x}", u128::from(*n) * 0x9e37_79b9_7f4a_7c15);
                a.assigned_at = 1_700_000_000_000 + i64::from(*n);
                a
            })
            .collect();
        for r in store.record_assignments(assignments).expect("committed") {
            r.expect("assigned");
        }
        let outcomes = ids
            .iter()
            .map(|n| {
                let arm = if n % 2 == 0 { "ai" } else { "human" };
                let mut o = common::outcome(
                    "disk",
                    &format!("evt-{n:08}"),
                    &format!("user-{n:08}"),
                    arm,
                    &[
                        ("resolved", f64::from(n % 2)),
                        ("minutes", f64::from(n % 97)),
                    ],
                );
                o.ts = 1_700_000_100_000 + i64::from(*n);
                o
            })
            .collect();
        for r in store.record_outcomes(&spec, outcomes).expect("committed") {
            r.expect("recorded");
        }
        i += 256;
    }
    store.close().expect("closes");
    drop(store);
    let total = du(dir.path());
    let log = du(&dir.path().join("log"));
    println!(
        "{units} units: {total} bytes in all, {} bytes per unit ({} log, {} views)",
        total / u64::from(units),
        log / u64::from(units),
        (total - log) / u64::from(units)
    );
}
