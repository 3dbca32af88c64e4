//! Durable write throughput by wall clock and by the process's CPU time, so figures stay meaningful on a loaded machine.
//!
//! Run with `cargo run --release -p liftlab-store --example store_cpu_time`. Each workload
//! runs a fixed count of durable writes against a fresh `SledStore` in a temporary directory
//! and prints wall time, process CPU time (user + system, from /proc/self/stat) and both
//! rates. CPU time counts every thread of the process: callers, writer, checkpointer and sled's
//! I/O threads.

#[path = "../benches/workload/mod.rs"]
mod workload;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use liftlab_store::{SledStore, Store};
use workload::{assignment, outcome, running, spec};

/// The allocator the `liftlab` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU seconds (user + system) used by this process so far, from /proc/self/stat (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat is readable");
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u32 =
        fields[11].parse::<u32>().expect("utime") + fields[12].parse::<u32>().expect("stime");
    // Linux reports these in clock ticks of 1/100 s.
    f64::from(ticks) / 100.0
}

fn open(dir: &std::path::Path, key: &str) -> Arc<SledStore> {
    let store = Arc::new(SledStore::open(dir).expect("opens"));
    running(&*store, key);
    store
}

fn report(name: &str, n: u64, run: impl FnOnce()) {
    let (wall0, cpu0) = (Instant::now(), cpu_seconds());
    run();
    let (wall, cpu) = (wall0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let count = f64::from(u32::try_from(n).expect("a modest count"));
    println!(
        "{name}: {n} durable writes, wall {wall:.2} s ({:.0}/s), process CPU {cpu:.2} s ({:.1} µs per write, {:.0}/CPU-s)",
        count / wall,
        cpu * 1e6 / count,
        count / cpu
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open(dir.path(), "gc");
    let next = Arc::new(AtomicU64::new(0));
    let total = 64 * 500;
    report("record_assignment, 64 threads", total, || {
        std::thread::scope(|s| {
            for _ in 0..64 {
                let (store, next) = (Arc::clone(&store), Arc::clone(&next));
                s.spawn(move || {
                    for _ in 0..500 {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        store
                            .record_assignment(assignment("gc", n))
                            .expect("assigned");
                    }
                });
            }
        });
    });
    drop(store);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open(dir.path(), "ob");
    let units = 20_000u64;
    for chunk in (0..units).collect::<Vec<_>>().chunks(1000) {
        store
            .record_assignments(chunk.iter().map(|n| assignment("ob", *n)).collect())
            .expect("committed");
    }
    let spec = spec("ob");
    let batches = 200u64;
    report(
        "record_outcomes, batches of 500, 1 caller",
        batches * 500,
        || {
            for b in 0..batches {
                let batch = (b * 500..(b + 1) * 500)
                    .map(|e| outcome("ob", e % units, e))
                    .collect();
                store.record_outcomes(&spec, batch).expect("committed");
            }
        },
    );
}
