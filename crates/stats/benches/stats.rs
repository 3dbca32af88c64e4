//! Criterion benchmarks of liftlab-stats' hot paths: one comparison from sufficient statistics, a full comparison, and P(best).

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use liftlab_stats::{
    beta_prob_best, compare, prob_best, welch_absolute, Alternative, CompareSettings, Moments,
    SampleStats, DEFAULT_TAU,
};

fn arms() -> (SampleStats, SampleStats) {
    (
        SampleStats::from_sums(3407.0, 1396.87, 52377.9767),
        SampleStats::from_sums(3461.0, 2422.7, 134698.29),
    )
}

fn comparisons(c: &mut Criterion) {
    let (a, b) = arms();
    c.bench_function("welch_from_sufficient_stats", |bench| {
        bench.iter(|| welch_absolute(black_box(&a), black_box(&b), 0.05, Alternative::TwoSided))
    });
    let settings = CompareSettings {
        sequential_tau: Some(DEFAULT_TAU),
        ..CompareSettings::default()
    };
    c.bench_function("full_comparison", |bench| {
        bench.iter(|| compare(black_box(&a), black_box(&b), black_box(&settings)))
    });
}

fn bandits(c: &mut Criterion) {
    // The posteriors of gbstats reference case 22.
    let normal = [
        (0.01, 0.044743),
        (0.02, 0.044739),
        (0.03, 0.044734),
        (0.299999, 0.141173),
    ];
    c.bench_function("prob_best_4_arms", |bench| {
        bench.iter(|| prob_best(black_box(&normal)))
    });
    let beta = [(51.0, 951.0), (61.0, 941.0), (71.0, 931.0), (81.0, 921.0)];
    c.bench_function("beta_prob_best_4_arms", |bench| {
        bench.iter(|| beta_prob_best(black_box(&beta)))
    });
}

fn distributions(c: &mut Criterion) {
    let xs: Vec<f64> = (0..100_u32).map(|i| f64::from(i) / 10.0 - 5.0).collect();
    c.bench_function("norm_cdf_100", |bench| {
        bench.iter(|| {
            black_box(&xs)
                .iter()
                .map(|&x| liftlab_stats::dist::norm_cdf(x))
                .sum::<f64>()
        })
    });
    c.bench_function("exp_100", |bench| {
        bench.iter(|| {
            black_box(&xs)
                .iter()
                .map(|&x| (-0.5 * x * x).exp())
                .sum::<f64>()
        })
    });
}

fn accumulators(c: &mut Criterion) {
    let values: Vec<f64> = (0..1000_u32).map(|i| 1e9 + f64::from(i % 97)).collect();
    c.bench_function("moments_push_1000", |bench| {
        bench.iter(|| {
            let mut m = Moments::new();
            for &x in black_box(&values) {
                m.push(x);
            }
            m
        })
    });
}

criterion_group!(benches, comparisons, bandits, distributions, accumulators);
criterion_main!(benches);
