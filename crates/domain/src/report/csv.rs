//! CSV rendering of a report: one row per metric × treatment-arm comparison, the decision first, then the diagnostics.

use std::fmt::Write;

use super::types::{ComparisonResult, Interval, MetricResult, Report};

/// The CSV header, in column order.
pub const CSV_HEADER: &[&str] = &[
    "experiment",
    "version",
    "epoch",
    "metric",
    "kind",
    "direction",
    "role",
    "arm",
    "baseline",
    "n_baseline",
    "mean_baseline",
    "sd_baseline",
    "n_arm",
    "mean_arm",
    "sd_arm",
    "verdict",
    "decision_method",
    "decision_test",
    "decision_estimate",
    "decision_ci_low",
    "decision_ci_high",
    "decision_p_value",
    "decision_interval_level",
    "absolute",
    "absolute_ci_low",
    "absolute_ci_high",
    "relative",
    "relative_ci_low",
    "relative_ci_high",
    "p_value",
    "p_value_adjusted",
    "chance_to_win",
    "sequential_p_value",
    "sequential_ci_low",
    "sequential_ci_high",
];

/// Quotes a field when it holds a comma, a quote or a line break (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(x: Option<f64>) -> String {
    x.filter(|v| v.is_finite())
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn interval(i: Option<Interval>) -> [String; 3] {
    [
        num(i.map(|i| i.estimate)),
        num(i.map(|i| i.ci_low)),
        num(i.map(|i| i.ci_high)),
    ]
}

fn row(report: &Report, metric: &MetricResult, c: &ComparisonResult) -> Vec<String> {
    let arm = |key: &str| metric.arms.iter().find(|a| a.arm == key);
    let (b, t) = (arm(&c.baseline), arm(&c.arm));
    let stats = |a: Option<&super::types::ArmStats>| {
        [
            a.map(|a| a.n.to_string()).unwrap_or_default(),
            // An arm with no values has no mean or sd: empty, not 0.
            num(a.filter(|a| a.n > 0).map(|a| a.mean)),
            num(a.filter(|a| a.n > 1).map(|a| a.sd)),
        ]
    };
    let mut out = vec![
        field(&report.experiment),
        report.version.to_string(),
        report.epoch.to_string(),
        field(&metric.key),
        name(&metric.kind),
        name(&metric.direction),
        name(&metric.role),
        field(&c.arm),
        field(&c.baseline),
    ];
    out.extend(stats(b));
    out.extend(stats(t));
    out.push(c.verdict.as_str().to_string());
    let d = c.decision;
    out.push(d.map(|d| d.method.as_str().to_string()).unwrap_or_default());
    out.push(d.map(|d| name(&d.test)).unwrap_or_default());
    out.push(num(d.map(|d| d.estimate)));
    out.push(num(d.map(|d| d.ci_low)));
    out.push(num(d.map(|d| d.ci_high)));
    out.push(num(d.map(|d| d.p_value)));
    out.push(num(d.map(|d| d.interval_level)));
    out.extend(interval(c.absolute));
    out.extend(interval(c.relative));
    out.push(num(c.p_value));
    out.push(num(c.p_value_adjusted));
    out.push(num(c.bayes.map(|b| b.chance_to_win)));
    out.push(num(c.sequential.map(|s| s.p_value)));
    out.push(num(c.sequential.map(|s| s.ci_low)));
    out.push(num(c.sequential.map(|s| s.ci_high)));
    out
}

/// A serde-named enum as its JSON string.
fn name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

impl Report {
    /// The report as CSV (RFC 4180, `\n` line ends): a header, then one row per metric ×
    /// treatment comparison, in the JSON's order. Empty cells mean "not computed".
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", CSV_HEADER.join(","));
        for metric in &self.metrics {
            for c in &metric.comparisons {
                let _ = writeln!(out, "{}", row(self, metric, c).join(","));
            }
        }
        out
    }
}
