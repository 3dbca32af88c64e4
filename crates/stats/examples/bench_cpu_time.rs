//! CPU time per call of the benchmarked paths, read from the thread's own CPU clock, which stays fair when other jobs share the cores.
//!
//! Criterion measures wall-clock time, which a loaded machine inflates by
//! the oversubscription factor. This reads the thread's user + system
//! time from /proc/thread-self/stat (Linux, 10 ms ticks) over many calls.
//! Run it with `cargo run --release -p liftlab-stats --example bench_cpu_time`.

use std::hint::black_box;

use liftlab_stats::{
    compare, prob_best, welch_absolute, Alternative, CompareSettings, SampleStats, DEFAULT_TAU,
};

/// The thread's user + system CPU time in clock ticks, if the platform exposes it.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// Microseconds per clock tick (the kernel's USER_HZ is 100 on Linux).
const TICK_MICROS: f64 = 10_000.0;

fn time(name: &str, calls: u32, mut f: impl FnMut()) {
    for _ in 0..calls / 10 {
        f();
    }
    let Some(start) = cpu_ticks() else {
        println!("{name}: no per-thread CPU clock on this platform");
        return;
    };
    for _ in 0..calls {
        f();
    }
    let ticks = cpu_ticks().unwrap_or(start).saturating_sub(start);
    let ticks = f64::from(u32::try_from(ticks).unwrap_or(u32::MAX));
    let per_call = ticks * TICK_MICROS / f64::from(calls);
    println!("{name}: {per_call:.3} µs CPU per call ({calls} calls, {ticks} ticks)");
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
