//! A small Prometheus registry on atomics: the service's counters and histograms, rendered as text.
//!
//! Series are created on first use and live for the life of the process. Reads of an existing
//! series take a shared lock and one atomic add, so the hot path stays cheap. [`Metrics::render`]
//! writes the text exposition format (version 0.0.4), followed by `liftlab_build_info` and the
//! process metrics of [`crate::process`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use liftlab_domain::OutReason;

/// The content type of [`Metrics::render`]'s output.
pub const EXPOSITION_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets in seconds, from 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Batch-size buckets (records per store call).
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
];

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A distribution over fixed buckets, with a running sum and count.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts per bucket; the last slot is the +Inf overflow.
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// The sum as `f64` bits, updated by compare-and-swap.
    sum_bits: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn observe(&self, value: f64) {
        let slot = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut current = self.sum_bits.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + value).to_bits();
            match self.sum_bits.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum_bits.load(Ordering::Relaxed))
    }
}

/// A family of series sharing a name and label names.
#[derive(Debug)]
struct Family<T> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: RwLock<BTreeMap<Vec<String>, Arc<T>>>,
}

impl<T> Family<T> {
    fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Family {
            name,
            help,
            labels,
            series: RwLock::new(BTreeMap::new()),
        }
    }

    fn get_or_create(&self, values: &[&str], make: impl FnOnce() -> T) -> Arc<T> {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        {
            let series = self.series.read().unwrap_or_else(|p| p.into_inner());
            // Looking up by a borrowed key would need an owned Vec anyway; scanning by equality
            // of slices avoids the allocation on the hot path.
            if let Some(found) = series
                .iter()
                .find(|(k, _)| k.iter().map(String::as_str).eq(values.iter().copied()))
            {
                return Arc::clone(found.1);
            }
        }
        let mut series = self.series.write().unwrap_or_else(|p| p.into_inner());
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        Arc::clone(series.entry(key).or_insert_with(|| Arc::new(make())))
    }

    fn snapshot(&self) -> Vec<(Vec<String>, Arc<T>)> {
        let series = self.series.read().unwrap_or_else(|p| p.into_inner());
        series
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }

    fn label_set(&self, values: &[String], extra: Option<(&str, &str)>) -> String {
        let mut out = String::new();
        let pairs = self
            .labels
            .iter()
            .copied()
            .zip(values.iter().map(String::as_str))
            .chain(extra);
        for (i, (name, value)) in pairs.enumerate() {
            out.push(if i == 0 { '{' } else { ',' });
            let _ = write!(out, "{name}=\"{}\"", escape_label(value));
        }
        if !out.is_empty() {
            out.push('}');
        }
        out
    }
}

fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn format_float(x: f64) -> String {
    if x == f64::INFINITY {
        "+Inf".to_string()
    } else {
        format!("{x}")
    }
}

/// Every metric the service exports.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<Counter>,
    request_seconds: Family<Histogram>,
    assignments: Family<Counter>,
    answers: Family<Counter>,
    outcomes: Family<Counter>,
    store_seconds: Family<Histogram>,
    store_batch: Family<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// How an outcome event ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeResult {
    Accepted,
    Duplicate,
    Rejected,
}

impl OutcomeResult {
    fn as_str(self) -> &'static str {
        match self {
            OutcomeResult::Accepted => "accepted",
            OutcomeResult::Duplicate => "duplicate",
            OutcomeResult::Rejected => "rejected",
        }
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            requests: Family::new(
                "liftlab_http_requests_total",
                "HTTP requests by route pattern, method and status.",
                &["route", "method", "status"],
            ),
            request_seconds: Family::new(
                "liftlab_http_request_duration_seconds",
                "HTTP request latency by route pattern, method and status.",
                &["route", "method", "status"],
            ),
            assignments: Family::new(
                "liftlab_assignments_total",
                "Assignment answers by experiment, arm and whether the unit is in the experiment.",
                &["experiment", "arm", "in_experiment"],
            ),
            answers: Family::new(
                "liftlab_assign_answers_total",
                "Assignment answers by experiment and reason: in_experiment, or why not (not_running, not_targeted, outside_coverage).",
                &["experiment", "reason"],
            ),
            outcomes: Family::new(
                "liftlab_outcomes_total",
                "Outcome events by experiment and result (accepted, duplicate, rejected).",
                &["experiment", "result"],
            ),
            store_seconds: Family::new(
                "liftlab_store_write_seconds",
                "Latency of durable store writes (including the group-commit flush) by operation.",
                &["operation"],
            ),
            store_batch: Family::new(
                "liftlab_store_batch_size",
                "Records per durable store write by operation.",
                &["operation"],
            ),
        }
    }

    /// Counts one finished request and its latency.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [route, method, status.as_str()];
        self.requests
            .get_or_create(&labels, Counter::default)
            .inc_by(1);
        self.request_seconds
            .get_or_create(&labels, || Histogram::new(LATENCY_BUCKETS))
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one assignment answer: by arm and membership, and by reason (`None`: in the
    /// experiment).
    pub fn observe_assignment(&self, experiment: &str, arm: &str, reason: Option<OutReason>) {
        let flag = if reason.is_none() { "true" } else { "false" };
        self.assignments
            .get_or_create(&[experiment, arm, flag], Counter::default)
            .inc_by(1);
        let reason = reason.map_or("in_experiment", OutReason::as_str);
        self.answers
            .get_or_create(&[experiment, reason], Counter::default)
            .inc_by(1);
    }

    /// Counts `n` outcome events of one experiment that ended as `result`.
    pub fn observe_outcomes(&self, experiment: &str, result: OutcomeResult, n: u64) {
        if n == 0 {
            return;
        }
        self.outcomes
            .get_or_create(&[experiment, result.as_str()], Counter::default)
            .inc_by(n);
    }

    /// Records one durable store write of `batch` records that took `elapsed`.
    pub fn observe_store_write(&self, operation: &str, batch: usize, elapsed: Duration) {
        self.store_seconds
            .get_or_create(&[operation], || Histogram::new(LATENCY_BUCKETS))
            .observe(elapsed.as_secs_f64());
        let batch = u32::try_from(batch).map_or(f64::from(u32::MAX), f64::from);
        self.store_batch
            .get_or_create(&[operation], || Histogram::new(BATCH_BUCKETS))
            .observe(batch);
    }

    /// The current value of a request counter, for tests.
    pub fn request_count(&self, route: &str, method: &str, status: u16) -> u64 {
        let status = status.to_string();
        self.requests
            .get_or_create(&[route, method, status.as_str()], Counter::default)
            .get()
    }

    /// Renders every series in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for family in [
            &self.requests,
            &self.assignments,
            &self.answers,
            &self.outcomes,
        ] {
            render_counters(&mut out, family);
        }
        for family in [
            &self.request_seconds,
            &self.store_seconds,
            &self.store_batch,
        ] {
            render_histograms(&mut out, family);
        }
        crate::process::render(&mut out);
        out
    }
}

fn render_counters(out: &mut String, family: &Family<Counter>) {
    let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
    let _ = writeln!(out, "# TYPE {} counter", family.name);
    for (labels, counter) in family.snapshot() {
        let _ = writeln!(
            out,
            "{}{} {}",
            family.name,
            family.label_set(&labels, None),
            counter.get()
        );
    }
}

fn render_histograms(out: &mut String, family: &Family<Histogram>) {
    let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
    let _ = writeln!(out, "# TYPE {} histogram", family.name);
    for (labels, hist) in family.snapshot() {
        // Read the buckets first and derive the count from them, so a concurrent observation
        // cannot make the +Inf bucket disagree with `_count`.
        let mut cumulative = 0u64;
        let bounds = hist.bounds.iter().copied().chain([f64::INFINITY]);
        for (bound, bucket) in bounds.zip(&hist.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = format_float(bound);
            let _ = writeln!(
                out,
                "{}_bucket{} {cumulative}",
                family.name,
                family.label_set(&labels, Some(("le", &le)))
            );
        }
        let set = family.label_set(&labels, None);
        let _ = writeln!(out, "{}_sum{set} {}", family.name, format_float(hist.sum()));
        let _ = writeln!(out, "{}_count{set} {cumulative}", family.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checker for the text exposition format: every sample line belongs to a declared family,
    /// label sets are well-formed, values parse, and histogram buckets are cumulative and end in
    /// a +Inf bucket equal to `_count`.
    fn check_exposition(text: &str) -> BTreeMap<String, f64> {
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
                assert!(["counter", "histogram", "gauge"].contains(&kind), "{line}");
                assert!(
                    types.insert(name.to_string(), kind.to_string()).is_none(),
                    "{line}"
                );
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(!line.starts_with('#'), "unexpected comment {line}");
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            let name = series.split('{').next().expect("name");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad metric name in {line}"
            );
            if let Some(labels) = series.strip_prefix(name) {
                if !labels.is_empty() {
                    assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                }
            }
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| types.contains_key(*f)))
                .unwrap_or(name);
            assert!(types.contains_key(family), "sample before its TYPE: {line}");
            samples.insert(series.to_string(), value);
        }
        samples
    }

    #[test]
    fn rendered_text_is_valid_exposition() {
        let m = Metrics::new();
        m.observe_request(
            "/v1/experiments/{key}/assign",
            "POST",
            200,
            Duration::from_micros(300),
        );
        m.observe_request(
            "/v1/experiments/{key}/assign",
            "POST",
            200,
            Duration::from_secs(20),
        );
        m.observe_request("/healthz", "GET", 200, Duration::from_micros(50));
        m.observe_assignment("checkout \"v2\"", "ai", None);
        m.observe_assignment("claims", "human", Some(OutReason::NotRunning));
        m.observe_outcomes("claims", OutcomeResult::Duplicate, 3);
        m.observe_store_write("record_outcomes", 500, Duration::from_millis(3));
        let text = m.render();
        let samples = check_exposition(&text);
        let route = "route=\"/v1/experiments/{key}/assign\",method=\"POST\",status=\"200\"";
        assert_eq!(
            samples[&format!("liftlab_http_requests_total{{{route}}}")],
            2.0
        );
        assert_eq!(
            samples
                [&format!("liftlab_http_request_duration_seconds_bucket{{{route},le=\"0.0005\"}}")],
            1.0
        );
        assert_eq!(
            samples[&format!("liftlab_http_request_duration_seconds_bucket{{{route},le=\"10\"}}")],
            1.0
        );
        assert_eq!(
            samples
                [&format!("liftlab_http_request_duration_seconds_bucket{{{route},le=\"+Inf\"}}")],
            2.0
        );
        assert_eq!(
            samples[&format!("liftlab_http_request_duration_seconds_count{{{route}}}")],
            2.0
        );
        assert!(text.contains(r#"experiment="checkout \"v2\"""#), "{text}");
        assert_eq!(
            samples["liftlab_assign_answers_total{experiment=\"claims\",reason=\"not_running\"}"],
            1.0
        );
        assert_eq!(
            samples["liftlab_assignments_total{experiment=\"claims\",arm=\"human\",in_experiment=\"false\"}"],
            1.0
        );
        assert_eq!(
            samples["liftlab_outcomes_total{experiment=\"claims\",result=\"duplicate\"}"],
            3.0
        );
        assert_eq!(
            samples["liftlab_store_batch_size_bucket{operation=\"record_outcomes\",le=\"500\"}"],
            1.0
        );
        assert_eq!(
            samples["liftlab_store_batch_size_bucket{operation=\"record_outcomes\",le=\"250\"}"],
            0.0
        );
    }

    #[test]
    fn histogram_sum_accumulates_across_threads() {
        let h = Arc::new(Histogram::new(LATENCY_BUCKETS));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let h = Arc::clone(&h);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        h.observe(0.5);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread finishes");
        }
        assert_eq!(h.count(), 4000);
        assert!((h.sum() - 2000.0).abs() < 1e-9);
    }
}
