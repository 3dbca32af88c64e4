//! Criterion benches of the store's durable write paths and hot reads, with a plain sled insert+flush loop as the yardstick.
//!
//! Run with `cargo bench -p liftlab-store --bench store`. Every write measured here is
//! durable when it returns (flushed by the group commit), and the yardstick pays one
//! `flush` per insert, so the ratio of the two is what group commit buys.

mod workload;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use liftlab_store::{MemStore, SledStore, Store};
use workload::{assignment, outcome, running, spec};

/// The allocator the `liftlab` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Concurrent callers in the group-commit bench, as in the issue: 64 router requests in flight.
const WRITERS: u64 = 64;

/// Events per call on the batch path, as the HTTP layer sends them.
const BATCH: u64 = 500;

/// How many of `total` iterations worker `i` of `workers` does, so that they add up exactly.
fn share(total: u64, workers: u64, i: u64) -> u64 {
    total / workers + u64::from(i < total % workers)
}

fn group_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(SledStore::open(dir.path()).expect("opens"));
    running(&*store, "gc");
    let next = Arc::new(AtomicU64::new(0));

    let mut group = c.benchmark_group("durable_writes");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(1));

    // 64 threads each record new units' assignments; a call returns once its batch is flushed.
    group.bench_function("record_assignment_64_threads_group_commit", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..WRITERS {
                    let store = Arc::clone(&store);
                    let next = Arc::clone(&next);
                    s.spawn(move || {
                        for _ in 0..share(iters, WRITERS, t) {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            store
                                .record_assignment(assignment("gc", n))
                                .expect("assigned");
                        }
                    });
                }
            });
            start.elapsed()
        });
    });

    // The yardstick: one thread, one small insert and one flush per durable write.
    let plain_dir = tempfile::tempdir().expect("a temporary directory");
    let db = sled::open(plain_dir.path()).expect("opens");
    let tree = db.open_tree("plain").expect("a tree");
    let mut k = 0u64;
    group.bench_function("plain_sled_insert_flush", |b| {
        b.iter(|| {
            k += 1;
            tree.insert(k.to_be_bytes(), &[7u8; 200][..])
                .expect("inserts");
            db.flush().expect("flushes");
        });
    });
    group.finish();
    store.close().expect("closes");
}

fn outcome_batches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(SledStore::open(dir.path()).expect("opens"));
    running(&*store, "ob");
    let units = 20_000u64;
    for chunk in (0..units).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk.iter().map(|n| assignment("ob", *n)).collect();
        for r in store.record_assignments(batch).expect("committed") {
            r.expect("assigned");
        }
    }
    let spec = spec("ob");
    let next = Arc::new(AtomicU64::new(0));

    let mut group = c.benchmark_group("durable_outcomes");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(BATCH));

    // One caller, 500 new events per call, one group commit each.
    group.bench_function("record_outcomes_batch_500_1_caller", |b| {
        b.iter(|| {
            let base = next.fetch_add(BATCH, Ordering::Relaxed);
            let batch = (base..base + BATCH)
                .map(|e| outcome("ob", e % units, e))
                .collect();
            store.record_outcomes(&spec, batch).expect("committed")
        });
    });

    // Four callers at once (the HTTP workers): their batches share group commits.
    group.bench_function("record_outcomes_batch_500_4_callers", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..4 {
                    let store = Arc::clone(&store);
                    let next = Arc::clone(&next);
                    let spec = &spec;
                    s.spawn(move || {
                        for _ in 0..share(iters, 4, t) {
                            let base = next.fetch_add(BATCH, Ordering::Relaxed);
                            let batch = (base..base + BATCH)
                                .map(|e| outcome("ob", e % units, e))
                                .collect();
                            store.record_outcomes(spec, batch).expect("committed");
                        }
                    });
                }
            });
            start.elapsed()
        });
    });
    group.finish();

    // The logic alone, without disk: the same batch on MemStore.
    let mem = MemStore::new();
    running(&mem, "ob");
    for chunk in (0..units).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk.iter().map(|n| assignment("ob", *n)).collect();
        mem.record_assignments(batch).expect("committed");
    }
    let mut group = c.benchmark_group("in_memory");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("mem_record_outcomes_batch_500", |b| {
        b.iter(|| {
            let base = next.fetch_add(BATCH, Ordering::Relaxed);
            let batch = (base..base + BATCH)
                .map(|e| outcome("ob", e % units, e))
                .collect();
            mem.record_outcomes(&spec, batch).expect("committed")
        });
    });
    group.finish();

    let mut group = c.benchmark_group("hot_reads");
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    group.bench_function("sled_experiment_lookup", |b| {
        b.iter(|| store.experiment("ob").expect("found"));
    });
    group.bench_function("sled_assignment_lookup", |b| {
        b.iter(|| {
            n = (n + 7919) % units;
            store
                .assignment("ob", &format!("unit-{n}"))
                .expect("reads")
                .expect("exists")
        });
    });
    group.finish();
    store.close().expect("closes");
}

criterion_group!(benches, group_commit, outcome_batches);
criterion_main!(benches);
