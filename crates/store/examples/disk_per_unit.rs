//! Bytes on disk per unit: 20,000 new units, each with one assignment and one two-metric outcome, everything in the data directory counted after close.
//!
//! Run: `cargo run --release -p liftlab-store --example disk_per_unit [UNITS]`. Units are
//! assigned and their outcomes recorded in batches of 256 (as group commit takes them), with
//! 32-hex-digit assignment ids and a segment attribute, as the server writes them.
//!
//! Start-up: `disk_per_unit 1000000 DIR` keeps the directory, then `disk_per_unit --open DIR`
//! (a fresh process) times `SledStore::open` on it, reads one unit, and prints the process's
//! resident memory after the open.

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

/// Times the open of an existing directory and reports resident memory after it.
fn open_only(path: &std::path::Path) {
    let started = std::time::Instant::now();
    let store = SledStore::open(path).expect("opens");
    let opened = started.elapsed();
    let unit = store.assignment("disk", "user-00000000").expect("reads");
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or("VmRSS: ?");
    println!(
        "open: {:.3} s; first unit found: {}; {rss}",
        opened.as_secs_f64(),
        unit.is_some()
    );
    store.close().expect("closes");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--open") {
        return open_only(std::path::Path::new(args.get(1).expect("--open DIR")));
    }
    let units: u32 = args
        .first()
        .map_or(20_000, |s| s.parse().expect("a number of units"));
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dir = args
        .get(1)
        .map_or(temp.path().to_path_buf(), std::path::PathBuf::from);
    let store = SledStore::open(&dir).expect("opens");
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
    let total = du(&dir);
    let log = du(&dir.join("log"));
    println!(
        "{units} units: {total} bytes in all, {} bytes per unit ({} log, {} views)",
        total / u64::from(units),
        log / u64::from(units),
        (total - log) / u64::from(units)
    );
}
