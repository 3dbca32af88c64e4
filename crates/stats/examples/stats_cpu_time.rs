//! CPU time per call of the benchmarked paths, read from the thread's own CPU clock, which stays fair when other jobs share the cores.
//!
//! Criterion measures wall-clock time, which a loaded machine inflates by
//! the oversubscription factor. This reads the thread's user + system
//! time from /proc/thread-self/stat (Linux, 10 ms ticks) over many calls.
//! Run it with `cargo run --release -p liftlab-stats --example stats_cpu_time`.

mod cpu_clock;

use std::hint::black_box;

use liftlab_stats::{
    compare, prob_best, welch_absolute, Alternative, CompareSettings, SampleStats, DEFAULT_TAU,
};

fn time(name: &str, calls: u32, f: impl FnMut()) {
    match cpu_clock::micros_per_call(calls, f) {
        Some((per_call, ticks)) => {
            println!("{name}: {per_call:.3} µs CPU per call ({calls} calls, {ticks} ticks)");
        }
        None => println!("{name}: no per-thread CPU clock on this platform"),
    }
}

fn main() {
    let a = SampleStats::from_sums(3407.0, 1396.87, 52377.9767);
    let b = SampleStats::from_sums(3461.0, 2422.7, 134698.29);
    time("welch_from_sufficient_stats", 4_000_000, || {
        black_box(welch_absolute(
            black_box(&a),
            black_box(&b),
            0.05,
            Alternative::TwoSided,
        ))
        .ok();
    });
    let settings = CompareSettings {
        sequential_tau: Some(DEFAULT_TAU),
        ..CompareSettings::default()
    };
    time("full_comparison", 1_000_000, || {
        black_box(compare(black_box(&a), black_box(&b), black_box(&settings))).ok();
    });
    let arms = [
        (0.01, 0.044743),
        (0.02, 0.044739),
        (0.03, 0.044734),
        (0.299999, 0.141173),
    ];
    time("prob_best_4_arms", 40_000, || {
        black_box(prob_best(black_box(&arms))).ok();
    });
}
