//! CPU time per call of the assignment benchmarks, read from the thread's own CPU clock, which stays fair when other jobs share the cores.
//!
//! Criterion (`benches/assign.rs`) measures wall-clock time, which a loaded machine inflates
//! by its oversubscription factor. This reads the thread's user + system time from
//! /proc/thread-self/stat (Linux, 10 ms ticks) over many calls of the same paths.
//! Run it with `cargo run --release -p liftlab-domain --example domain_cpu_time`.

#[path = "../../stats/examples/cpu_clock/mod.rs"]
mod cpu_clock;
#[path = "../benches/workload/mod.rs"]
mod workload;

use std::hint::black_box;

use liftlab_domain::assign::initial_period;
use liftlab_domain::hash::hash_v2;
use liftlab_domain::{AllocationPeriod, ExperimentSpec};
use serde_json::json;
use workload::{decision, record, requests, spec, thompson_period, warmed_state};

fn time(name: &str, calls: u32, f: impl FnMut()) {
    let Some((per_call, ticks)) = cpu_clock::micros_per_call(calls, f) else {
        println!("{name}: no per-thread CPU clock on this platform");
        return;
    };
    if per_call < 1.0 {
        println!(
            "{name}: {:.0} ns CPU per call ({calls} calls, {ticks} ticks)",
            per_call * 1000.0
        );
    } else {
        println!("{name}: {per_call:.1} µs CPU per call ({calls} calls, {ticks} ticks)");
    }
}

/// Times the decision alone (`<name>_decision`) and the decision plus its record (`<name>_record`).
fn time_decide(name: &str, spec: &ExperimentSpec, period: &AllocationPeriod) {
    let reqs = requests();
    let mut i = 0usize;
    time(&format!("{name}_decision"), 4_000_000, || {
        i = (i + 1) % reqs.len();
        black_box(decision(black_box(spec), period, &reqs[i]));
    });
    time(&format!("{name}_record"), 4_000_000, || {
        i = (i + 1) % reqs.len();
        black_box(record(black_box(spec), period, &reqs[i]));
    });
}

fn main() {
    let units: Vec<String> = (0..1024).map(|i| format!("ticket-{i:08}")).collect();
    let mut i = 0usize;
    time("hash_v2", 10_000_000, || {
        i = (i + 1) % units.len();
        black_box(hash_v2(black_box("support-triage"), &units[i]));
    });

    let fixed = spec(
        json!({"policy": "fixed", "weights": {"human": 0.4, "ai-assist": 0.2, "ai-auto": 0.2, "ai-hybrid": 0.2}}),
        "binary",
    );
    time_decide("assign/fixed", &fixed, &initial_period(&fixed, 0));

    let thompson = spec(json!({"policy": "thompson", "reward": "reward"}), "binary");
    time_decide("assign/thompson", &thompson, &thompson_period(&thompson));

    for (name, kind, binary, per_arm, calls) in [
        (
            "thompson/recompute_4_arms_beta",
            "binary",
            true,
            2_500,
            20_000,
        ),
        (
            "thompson/recompute_4_arms_beta_exact",
            "binary",
            true,
            60,
            2_000,
        ),
        (
            "thompson/recompute_4_arms_normal",
            "duration",
            false,
            2_500,
            20_000,
        ),
    ] {
        let spec = spec(
            json!({"policy": "thompson", "reward": "reward", "discount": 0.99}),
            kind,
        );
        let state = warmed_state(&spec, binary, per_arm);
        time(name, calls, || {
            let mut s = state.clone();
            black_box(s.recompute(&spec, 1, 0));
        });
    }
}
