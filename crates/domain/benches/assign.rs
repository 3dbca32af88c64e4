//! Criterion benchmarks of the assignment hot path: fixed and Thompson decisions, and recomputing Thompson weights.

mod workload;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use liftlab_domain::assign::initial_period;
use liftlab_domain::{AllocationPeriod, ExperimentSpec};
use serde_json::json;
use workload::{decision, record, requests, spec, thompson_period, warmed_state};

/// Benchmarks the decision alone (`<name>_decision`: targeting, hashing, choosing the bucket)
/// and the decision plus the owned record to store (`<name>_record`).
fn bench_decide(c: &mut Criterion, name: &str, spec: &ExperimentSpec, period: &AllocationPeriod) {
    let reqs = requests();
    let mut i = 0usize;
    c.bench_function(&format!("{name}_decision"), |b| {
        b.iter(|| {
            i = (i + 1) % reqs.len();
            black_box(decision(black_box(spec), period, &reqs[i]))
        })
    });
    c.bench_function(&format!("{name}_record"), |b| {
        b.iter(|| {
            i = (i + 1) % reqs.len();
            black_box(record(black_box(spec), period, &reqs[i]))
        })
    });
}

fn fixed_decision(c: &mut Criterion) {
    let spec = spec(
        json!({"policy": "fixed", "weights": {"human": 0.4, "ai-assist": 0.2, "ai-auto": 0.2, "ai-hybrid": 0.2}}),
        "binary",
    );
    let period = initial_period(&spec, 0);
    bench_decide(c, "assign/fixed", &spec, &period);
}

fn thompson_decision(c: &mut Criterion) {
    let spec = spec(json!({"policy": "thompson", "reward": "reward"}), "binary");
    bench_decide(c, "assign/thompson", &spec, &thompson_period(&spec));
}

fn recompute_weights(c: &mut Criterion) {
    // 2,500 rewards per arm puts every Beta parameter above the normal-approximation
    // threshold; 60 per arm keeps the exact Beta quadrature.
    for (name, kind, binary, per_arm) in [
        ("thompson/recompute_4_arms_beta", "binary", true, 2_500),
        ("thompson/recompute_4_arms_beta_exact", "binary", true, 60),
        ("thompson/recompute_4_arms_normal", "duration", false, 2_500),
    ] {
        let spec = spec(
            json!({"policy": "thompson", "reward": "reward", "discount": 0.99}),
            kind,
        );
        let state = warmed_state(&spec, binary, per_arm);
        c.bench_function(name, |b| {
            b.iter_batched_ref(
                || state.clone(),
                |s| black_box(s.recompute(&spec, 1, 0)),
                BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(
    benches,
    fixed_decision,
    thompson_decision,
    recompute_weights
);
criterion_main!(benches);
