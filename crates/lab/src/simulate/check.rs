//! Setting a run beside the truth: the report's estimates, verdicts, segments, bandit and drift checked against what the scenario says.

use super::*;

/// What the truth says about one treatment-versus-baseline comparison.
#[derive(Debug, Serialize)]
pub struct Truth {
    pub baseline_mean: f64,
    pub arm_mean: f64,
    pub absolute: f64,
    pub relative: f64,
    /// `better`, `worse` or `none`, read through the metric's direction.
    pub effect: &'static str,
}

/// What liftlab reported about one comparison.
#[derive(Debug, Serialize)]
pub struct Reported {
    /// The decision every view shows (relative lift, its interval and the p-value the verdict reads).
    pub decision: Option<Decision>,
    pub relative: Option<Interval>,
    pub absolute: Option<Interval>,
    pub p_value: Option<f64>,
    pub p_value_adjusted: Option<f64>,
    pub sequential_p_value: Option<f64>,
    pub verdict: Verdict,
}

/// The truth beside liftlab's answer for one metric and treatment arm.
#[derive(Debug, Serialize)]
pub struct MetricCheck {
    pub metric: String,
    pub role: String,
    pub arm: String,
    pub baseline: String,
    pub truth: Option<Truth>,
    pub reported: Option<Reported>,
    /// Whether the decision interval contains the true relative lift.
    pub decision_covered: Option<bool>,
    /// Whether the reported relative interval contains the true relative lift.
    pub relative_covered: Option<bool>,
    /// Whether the reported absolute interval contains the true difference.
    pub absolute_covered: Option<bool>,
    /// `right`, `missed` (no verdict on a real effect), `false positive` or `wrong direction`.
    pub assessment: &'static str,
}

/// The primary metric within one segment value.
#[derive(Debug, Serialize)]
pub struct SegmentCheck {
    pub attribute: String,
    pub value: String,
    pub arm: String,
    pub true_relative: Option<f64>,
    pub reported_relative: Option<Interval>,
    pub covered: Option<bool>,
}

/// How a bandit did against the truth.
#[derive(Debug, Serialize)]
pub struct BanditCheck {
    pub reward: String,
    /// Σ over tasks in the experiment of (best arm's expected reward − served arm's).
    pub regret: f64,
    /// The same for uniform allocation (in expectation).
    pub uniform_regret: f64,
    /// Share of tasks served the arm that was truly best at the time.
    pub best_arm_share: f64,
    /// The truly best arm at the end of the run.
    pub best_arm: String,
    /// Tasks per arm.
    pub served: BTreeMap<String, u64>,
    /// The allocation weights of the last period liftlab opened.
    pub final_weights: BTreeMap<String, f64>,
}

/// A change of the truth and what liftlab noticed.
#[derive(Debug, Serialize)]
pub struct DriftCheck {
    /// The scenario's changes, described.
    pub truth: Vec<String>,
    /// Each detection liftlab reported, with the task whose outcome triggered it when known.
    pub reported: Vec<String>,
}

/// Everything a simulation found.
#[derive(Debug, Serialize)]
pub struct SimulationReport {
    pub scenario: String,
    pub description: Option<String>,
    pub experiment: String,
    pub seed: u64,
    pub server: String,
    pub tasks: usize,
    pub in_experiment: usize,
    /// The analysis epoch liftlab reported on (above 0 after a re-baseline).
    pub epoch: u64,
    /// The first task of that epoch; the truth is taken from it on.
    pub truth_from_task: usize,
    pub outcomes_accepted: u64,
    pub elapsed_seconds: f64,
    /// liftlab's one-sentence verdict.
    pub verdict: String,
    pub metrics: Vec<MetricCheck>,
    pub segments: Vec<SegmentCheck>,
    pub bandit: Option<BanditCheck>,
    pub drift: DriftCheck,
}

/// Compares a run with the scenario's truth.
pub fn check(
    scenario: &Scenario,
    log: &DriveLog,
    report: &Report,
    seed: u64,
    server: String,
    elapsed: f64,
) -> SimulationReport {
    let n = scenario.tasks;
    // After a re-baseline the report covers the units assigned in the new epoch only, so the
    // truth is taken over the tasks assigned after it began.
    let epoch_start = report
        .epochs
        .iter()
        .find(|e| e.current && e.epoch > 0)
        .map(|e| e.started_at_ms);
    let from = epoch_start.map_or(0, |start| {
        log.ticks
            .iter()
            .find(|(at, _)| *at >= start)
            .map_or(n, |(_, first)| *first)
    });
    let in_experiment: Vec<&TaskRecord> = log
        .tasks
        .iter()
        .filter(|t| t.in_experiment && t.index >= from)
        .collect();
    let bandit = scenario.spec.allocation().thompson().is_some();
    // Under a bandit the arms see different stretches of time, so each arm's truth is the
    // mean of the per-task expectations of the tasks it served; otherwise the whole run's.
    let truth_of = |arm: &str, q: &Quantity| -> Option<f64> {
        if bandit {
            let served: Vec<usize> = in_experiment
                .iter()
                .filter(|t| t.arm == arm)
                .map(|t| t.index)
                .collect();
            if served.is_empty() {
                return scenario.truth(arm, q, from, n, None);
            }
            let sum: Option<f64> = served
                .iter()
                .map(|&i| scenario.truth(arm, q, i, i + 1, None))
                .sum();
            // Served counts are at most the task count, exact in f64.
            sum.map(|s| s / served.len() as f64)
        } else {
            scenario.truth(arm, q, from, n, None)
        }
    };
    // A metric's true mean per unit; a ratio metric's is its numerator's over its denominator's.
    let metric_truth = |arm: &str, key: &str| -> Option<f64> {
        let quantity = |k: &str| truth_of(arm, &scenario.quantity_of(k)?);
        match scenario.spec.metric(key)?.ratio() {
            Some(r) => {
                let (x, y) = (quantity(r.numerator())?, quantity(r.denominator())?);
                (y != 0.0).then(|| x / y)
            }
            None => quantity(key),
        }
    };
    let baseline = scenario.spec.baseline().key().to_string();
    let mut metrics = Vec::new();
    for metric in scenario.spec.metrics() {
        if metric.ratio().is_none() && scenario.quantity_of(metric.key()).is_none() {
            continue;
        }
        let reported_metric = report.metrics.iter().find(|m| m.key == metric.key());
        for arm in scenario.spec.treatments() {
            let truth = match (
                metric_truth(&baseline, metric.key()),
                metric_truth(arm.key(), metric.key()),
            ) {
                (Some(b), Some(t)) => {
                    let absolute = t - b;
                    let relative = if b == 0.0 {
                        f64::NAN
                    } else {
                        absolute / b.abs()
                    };
                    let effect = if absolute.abs() <= 1e-12 * b.abs().max(1.0) {
                        "none"
                    } else if (absolute < 0.0) == (metric.direction() == Direction::Decrease) {
                        "better"
                    } else {
                        "worse"
                    };
                    Some(Truth {
                        baseline_mean: b,
                        arm_mean: t,
                        absolute,
                        relative,
                        effect,
                    })
                }
                _ => None,
            };
            let comparison =
                reported_metric.and_then(|m| m.comparisons.iter().find(|c| c.arm == arm.key()));
            let reported = comparison.map(|c| Reported {
                decision: c.decision,
                relative: c.relative,
                absolute: c.absolute,
                p_value: c.p_value,
                p_value_adjusted: c.p_value_adjusted,
                sequential_p_value: c.sequential.map(|s| s.p_value),
                verdict: c.verdict,
            });
            let covers = |i: Option<Interval>, x: Option<f64>| match (i, x) {
                (Some(i), Some(x)) if x.is_finite() => Some(i.ci_low <= x && x <= i.ci_high),
                _ => None,
            };
            let decision_covered = covers(
                reported
                    .as_ref()
                    .and_then(|r| r.decision)
                    .map(|d| Interval {
                        estimate: d.estimate,
                        ci_low: d.ci_low,
                        ci_high: d.ci_high,
                    }),
                truth.as_ref().map(|t| t.relative),
            );
            let relative_covered = covers(
                reported.as_ref().and_then(|r| r.relative),
                truth.as_ref().map(|t| t.relative),
            );
            let absolute_covered = covers(
                reported.as_ref().and_then(|r| r.absolute),
                truth.as_ref().map(|t| t.absolute),
            );
            let assessment = match (&truth, &reported) {
                (Some(t), Some(r)) => assess(t.effect, r.verdict),
                _ => "n/a",
            };
            metrics.push(MetricCheck {
                metric: metric.key().to_string(),
                role: format!("{:?}", metric.role()).to_lowercase(),
                arm: arm.key().to_string(),
                baseline: baseline.clone(),
                truth,
                reported,
                decision_covered,
                relative_covered,
                absolute_covered,
                assessment,
            });
        }
    }
    SimulationReport {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        experiment: scenario.spec.key().to_string(),
        seed,
        server,
        tasks: log.tasks.len(),
        in_experiment: log.tasks.iter().filter(|t| t.in_experiment).count(),
        epoch: report.epoch,
        truth_from_task: from,
        outcomes_accepted: log.accepted,
        elapsed_seconds: elapsed,
        verdict: report.verdict.clone(),
        segments: segment_checks(scenario, report, from),
        bandit: bandit
            .then(|| bandit_check(scenario, &in_experiment, report))
            .flatten(),
        drift: drift_check(scenario, log, report),
        metrics,
    }
}

/// Judges a verdict against the true effect.
pub(super) fn assess(effect: &str, verdict: Verdict) -> &'static str {
    match (effect, verdict) {
        ("none", Verdict::Inconclusive | Verdict::Collecting) => "right",
        ("none", _) => "false positive",
        ("better", Verdict::Better) | ("worse", Verdict::Worse) => "right",
        (_, Verdict::Inconclusive | Verdict::Collecting) => "missed",
        _ => "wrong direction",
    }
}

pub(super) fn segment_checks(
    scenario: &Scenario,
    report: &Report,
    from: usize,
) -> Vec<SegmentCheck> {
    let primary = scenario.spec.primary().key();
    let Some(q) = scenario.quantity_of(primary) else {
        return Vec::new();
    };
    let baseline = scenario.spec.baseline().key();
    let n = scenario.tasks;
    let mut out = Vec::new();
    for segment in &scenario.segments {
        if !scenario.spec.segments().contains(&segment.attribute) {
            continue;
        }
        let breakdown = report
            .segments
            .iter()
            .find(|b| b.attribute == segment.attribute);
        for (value, _) in &segment.mix {
            let at = Some((segment.attribute.as_str(), value.as_str()));
            for arm in scenario.spec.treatments() {
                let true_relative = match (
                    scenario.truth(baseline, &q, from, n, at),
                    scenario.truth(arm.key(), &q, from, n, at),
                ) {
                    (Some(b), Some(t)) if b != 0.0 => Some((t - b) / b.abs()),
                    _ => None,
                };
                let reported_relative = breakdown
                    .and_then(|b| b.values.iter().find(|v| &v.value == value))
                    .and_then(|v| v.lifts.iter().find(|l| l.arm == arm.key()))
                    .and_then(|l| l.relative);
                let covered = match (reported_relative, true_relative) {
                    (Some(i), Some(x)) => Some(i.ci_low <= x && x <= i.ci_high),
                    _ => None,
                };
                out.push(SegmentCheck {
                    attribute: segment.attribute.clone(),
                    value: value.clone(),
                    arm: arm.key().to_string(),
                    true_relative,
                    reported_relative,
                    covered,
                });
            }
        }
    }
    out
}

pub(super) fn bandit_check(
    scenario: &Scenario,
    tasks: &[&TaskRecord],
    report: &Report,
) -> Option<BanditCheck> {
    let settings = scenario.spec.allocation().thompson()?;
    let reward = settings.reward();
    let q = scenario.quantity_of(reward)?;
    let decrease = scenario.spec.metric(reward)?.direction() == Direction::Decrease;
    let arms: Vec<&str> = scenario.spec.arms().iter().map(|a| a.key()).collect();
    // "Better" reads through the reward's direction: for a decrease, smaller is better.
    let sign = if decrease { -1.0 } else { 1.0 };
    let (mut regret, mut uniform, mut best_served) = (0.0, 0.0, 0_u64);
    let mut served: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        let values: Vec<f64> = arms
            .iter()
            .map(|a| {
                scenario
                    .truth(a, &q, task.index, task.index + 1, None)
                    .map_or(f64::NAN, |v| sign * v)
            })
            .collect();
        let best = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // Arm counts are small, exact in f64.
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let arm = arms.iter().position(|a| *a == task.arm)?;
        regret += best - values[arm];
        uniform += best - mean;
        if values[arm] >= best {
            best_served += 1;
        }
        *served.entry(task.arm.clone()).or_default() += 1;
    }
    let last = scenario.tasks.saturating_sub(1);
    let best_arm = arms
        .iter()
        .map(|a| {
            (
                a,
                scenario
                    .truth(a, &q, last, last + 1, None)
                    .map_or(f64::NAN, |v| sign * v),
            )
        })
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .map(|(a, _)| (*a).to_string())
        .unwrap_or_default();
    let final_weights = report
        .allocation
        .last()
        .map(|p| p.weights.clone())
        .unwrap_or_default();
    let total = u64::try_from(tasks.len()).unwrap_or(u64::MAX).max(1);
    Some(BanditCheck {
        reward: reward.to_string(),
        regret,
        uniform_regret: uniform,
        // Counts are exact in f64.
        best_arm_share: best_served as f64 / total as f64,
        best_arm,
        served,
        final_weights,
    })
}

pub(super) fn drift_check(scenario: &Scenario, log: &DriveLog, report: &Report) -> DriftCheck {
    let truth = scenario
        .drift
        .iter()
        .map(|d| {
            let factors: Vec<String> = serde_json::to_value(&d.multiply)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default()
                .iter()
                .map(|(p, f)| format!("{p} ×{f}"))
                .collect();
            let mut line = format!(
                "from task {}: {} {}",
                d.at_task,
                d.arm.as_deref().unwrap_or("every arm"),
                factors.join(", ")
            );
            if let Some(v) = &d.model_version {
                let _ = write!(line, " (model {v})");
            }
            line
        })
        .collect();
    let reported = report
        .drift
        .iter()
        .map(|d| {
            let task = log
                .ts_to_task
                .get(&d.detected_at_ms)
                .map_or_else(String::new, |i| format!(" at the outcome of task {i}"));
            format!(
                "{} in {} went {}{task} ({})",
                d.metric,
                d.arm,
                d.direction.as_str(),
                d.detector.as_str()
            )
        })
        .collect();
    DriftCheck { truth, reported }
}
