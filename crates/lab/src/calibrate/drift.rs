//! The drift studies: the level detectors' false alarms and delays, and the effect monitor's detection of a changed advantage.

use super::*;

/// An outcome of `arm` in `spec`'s experiment with no ids, no time and no values yet: the
/// drift studies set the timestamp and the metric of each event on it.
fn blank_outcome(spec: &ExperimentSpec, arm: &str) -> Outcome {
    Outcome {
        event_id: String::new(),
        experiment: spec.key().to_string(),
        task_id: String::new(),
        unit_id: String::new(),
        arm: arm.to_string(),
        epoch: 0,
        ts: 0,
        metrics: BTreeMap::new(),
        handled_by: None,
        model_version: None,
        attributes: BTreeMap::new(),
    }
}

/// A stream of one metric of one arm through liftlab-domain's `DriftMonitor`, one outcome per
/// event with the event's index as its timestamp.
struct DriftFeed {
    spec: ExperimentSpec,
    monitor: DriftMonitor,
    outcome: Outcome,
    index: i64,
}

impl DriftFeed {
    fn new(spec: &ExperimentSpec) -> Self {
        Self {
            spec: spec.clone(),
            monitor: DriftMonitor::new(),
            outcome: blank_outcome(spec, spec.baseline().key()),
            index: 0,
        }
    }

    /// Feeds one value; returns the detectors that fired on it.
    fn push(&mut self, x: f64) -> Vec<Detector> {
        self.outcome.ts = self.index;
        self.index += 1;
        self.outcome.metrics.insert("cycle_time".to_string(), x);
        self.monitor
            .observe(&self.spec, &self.outcome)
            .into_iter()
            .map(|d| d.detector)
            .collect()
    }
}

/// One drift run: false alarms by detector over the stationary events, and the delay (events
/// after the shift) with the detector that caught it first, when one did.
type DriftRun = ([u64; 3], Option<(u64, Detector)>);

pub(super) fn drift_study(pool: &Pool, runs: u64) -> anyhow::Result<(Vec<Figure>, u64)> {
    let spec = ExperimentSpec::parse(&serde_json::json!({
        "key": "calibration-drift",
        "arms": [{"key": "a", "role": "baseline"}, {"key": "b", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"a": 0.5, "b": 0.5}},
        "metrics": [{"key": "cycle_time", "kind": "duration", "direction": "decrease", "role": "primary"}],
        "drift": {"metrics": ["cycle_time"]}
    }))
    .map_err(|e| anyhow::anyhow!("the calibration drift spec is invalid: {e}"))?;
    let settings = spec
        .drift()
        .context("the drift spec has no drift settings")?
        .clone();
    let reference_n = usize::try_from(settings.reference_window()).unwrap_or(500);
    let detectors = [Detector::PageHinkley, Detector::Cusum, Detector::Window];
    let results: Vec<DriftRun> = pool.map(runs, "drift", |run| {
        let mut rng = pool.rng(20, run);
        let dist = cycle_time();
        let mut feed = DriftFeed::new(&spec);
        let mut alarms = [0_u64; 3];
        for event in 0..reference_n + DRIFT_EVENTS {
            for d in feed.push(dist.sample(&mut rng)) {
                if event >= reference_n {
                    if let Some(i) = detectors.iter().position(|x| *x == d) {
                        alarms[i] += 1;
                    }
                }
            }
        }
        let mut feed = DriftFeed::new(&spec);
        (0..reference_n).for_each(|_| {
            feed.push(dist.sample(&mut rng));
        });
        let mut caught = None;
        for event in 1..=DRIFT_EVENTS {
            if let Some(&d) = feed
                .push(dist.sample(&mut rng) * (1.0 + DRIFT_SHIFT))
                .first()
            {
                caught = Some((u64::try_from(event).unwrap_or(u64::MAX), d));
                break;
            }
        }
        (alarms, caught)
    });
    let ph = settings.page_hinkley();
    let cs = settings.cusum();
    let names = [
        format!(
            "Page–Hinkley (δ = {} sd, λ = {} sd)",
            ph.delta(),
            ph.lambda()
        ),
        format!("CUSUM (k = {} sd, h = {} sd)", cs.slack(), cs.threshold()),
        format!(
            "windowed Welch test ({} events, alpha {}, two windows in a row)",
            settings.recent_window(),
            settings.window_alpha()
        ),
    ];
    let ids = [
        "drift_false_alarms_page_hinkley",
        "drift_false_alarms_cusum",
        "drift_false_alarms_window",
    ];
    // Alarms are counted over all runs' stationary events together; the interval is the exact
    // Poisson interval of that count, scaled to 10,000 events.
    let per_10k = 10_000.0 / (count(DRIFT_EVENTS as u64) * count(runs));
    let alarm_figure = |id: &'static str, label: String, alarms: u64| {
        let (low, high) = poisson_interval(alarms, 0.95);
        Figure {
            id,
            study: "drift",
            label,
            value: count(alarms) * per_10k,
            low: low * per_10k,
            high: high * per_10k,
            target: "reported".to_string(),
            met: None,
            runs,
            percent: false,
        }
    };
    let total = |i: Option<usize>| -> u64 {
        results
            .iter()
            .map(|(a, _)| i.map_or_else(|| a.iter().sum(), |i| a[i]))
            .sum()
    };
    let mut figures = vec![alarm_figure(
        "drift_false_alarms",
        format!("false alarms per 10,000 stationary events, whole monitor (reference {reference_n} events)"),
        total(None),
    )];
    for i in 0..3 {
        figures.push(alarm_figure(
            ids[i],
            format!("false alarms per 10,000 stationary events, {}", names[i]),
            total(Some(i)),
        ));
    }
    // A run that never detects counts as the cap, which can only raise the median.
    let delays: Vec<f64> = results
        .iter()
        .map(|(_, c)| count(c.map_or(DRIFT_EVENTS as u64, |(d, _)| d)))
        .collect();
    let missed = results.iter().filter(|(_, c)| c.is_none()).count();
    let first: Vec<String> = detectors
        .iter()
        .map(|d| {
            let n = results
                .iter()
                .filter(|(_, c)| c.is_some_and(|(_, x)| x == *d))
                .count();
            format!("{} {n}", d.as_str())
        })
        .collect();
    figures.push(median_figure(
        "drift_delay",
        "drift",
        format!(
            "median events to detect a +{:.0}% shift of the mean (first to fire: {}; undetected after {DRIFT_EVENTS}: {missed})",
            DRIFT_SHIFT * 100.0,
            first.join(", ")
        ),
        delays,
        runs,
    ));
    Ok((figures, 0))
}

/// One effect-drift run: outcomes per arm after the change until the first effect alarm (if
/// within the horizon) for the changed advantage, and whether the shared level shift raised
/// an effect alarm at any point of its run.
type EffectRun = (Option<u64>, bool);

/// Feeds one outcome per arm (baseline first) to the monitor; returns whether an effect
/// detection was added.
fn feed_pair(
    spec: &ExperimentSpec,
    monitor: &mut DriftMonitor,
    outcome: &mut Outcome,
    x: [f64; 2],
) -> bool {
    let before = monitor.effect_detections().len();
    for (arm, value) in DECISION_ARMS.iter().zip(x) {
        outcome.ts += 1;
        outcome.arm = (*arm).to_string();
        outcome.metrics.insert("cycle_time".to_string(), value);
        monitor.observe(spec, outcome);
    }
    monitor.effect_detections().len() > before
}

pub(super) fn effect_drift_study(pool: &Pool, runs: u64) -> anyhow::Result<(Vec<Figure>, u64)> {
    let spec = ExperimentSpec::parse(&serde_json::json!({
        "key": "calibration-effect-drift",
        "arms": [{"key": DECISION_ARMS[0], "role": "baseline"}, {"key": DECISION_ARMS[1], "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {DECISION_ARMS[0]: 0.5, DECISION_ARMS[1]: 0.5}},
        "metrics": [{"key": "cycle_time", "kind": "duration", "direction": "decrease", "role": "primary"}],
        "drift": {"metrics": ["cycle_time"]}
    }))
    .map_err(|e| anyhow::anyhow!("the calibration effect-drift spec is invalid: {e}"))?;
    let after_lift = EFFECT_LIFT * (1.0 - EFFECT_CHANGE);
    let results: Vec<EffectRun> = pool.map(runs, "effect drift", |run| {
        let mut rng = pool.rng(21, run);
        let dist = cycle_time();
        let new_outcome = || blank_outcome(&spec, "");
        // The advantage changes: the treatment's cycle times go from 0.70 to 0.79 of the
        // baseline's level.
        let mut monitor = DriftMonitor::new();
        let mut outcome = new_outcome();
        let mut caught = None;
        for i in 0..EFFECT_BEFORE + EFFECT_HORIZON {
            let lift = if i < EFFECT_BEFORE {
                EFFECT_LIFT
            } else {
                after_lift
            };
            let x = [dist.sample(&mut rng), dist.sample(&mut rng) * (1.0 + lift)];
            if feed_pair(&spec, &mut monitor, &mut outcome, x) && i >= EFFECT_BEFORE {
                caught = Some(i - EFFECT_BEFORE + 1);
                break;
            }
        }
        // Both arms' levels × 1.3, the advantage unchanged: any effect alarm is false.
        let mut monitor = DriftMonitor::new();
        let mut outcome = new_outcome();
        let mut false_alarm = false;
        for i in 0..EFFECT_BEFORE + EFFECT_LEVEL_HORIZON {
            let level = if i < EFFECT_BEFORE {
                1.0
            } else {
                EFFECT_LEVEL_SHIFT
            };
            let x = [
                dist.sample(&mut rng) * level,
                dist.sample(&mut rng) * level * (1.0 + EFFECT_LIFT),
            ];
            if feed_pair(&spec, &mut monitor, &mut outcome, x) {
                false_alarm = true;
                break;
            }
        }
        (caught, false_alarm)
    });
    let settings = format!(
        "windows of {} outcomes per arm, a {}-window reference that windows join while both sums stay below {}, CUSUM slack {} and threshold {}",
        effect::EFFECT_WINDOW,
        effect::EFFECT_REFERENCE_WINDOWS,
        effect::EFFECT_JOIN,
        effect::EFFECT_SLACK,
        effect::EFFECT_THRESHOLD
    );
    let detected = results.iter().filter(|(c, _)| c.is_some()).count();
    let alarms = results.iter().filter(|(_, a)| *a).count();
    let delays: Vec<f64> = results
        .iter()
        .map(|(c, _)| count(c.unwrap_or(EFFECT_HORIZON)))
        .collect();
    let figures = vec![
        rate_figure(
            "effect_drift_detected",
            "effect_drift",
            format!(
                "a {:.0}% change in the treatment's advantage (lift {:+.0}% → {:+.0}%) detected within {EFFECT_HORIZON} outcomes per arm ({settings})",
                EFFECT_CHANGE * 100.0,
                EFFECT_LIFT * 100.0,
                after_lift * 100.0
            ),
            u64::try_from(detected).unwrap_or(u64::MAX),
            runs,
            "≥ 95%".to_string(),
            |v, _, _| v >= 0.95,
        ),
        median_figure(
            "effect_drift_delay",
            "effect_drift",
            format!(
                "median outcomes per arm to detect that change (undetected runs count as {EFFECT_HORIZON})"
            ),
            delays,
            runs,
        ),
        rate_figure(
            "effect_drift_level_alarms",
            "effect_drift",
            format!(
                "runs with any effect alarm when both arms' levels shift by {:+.0}% (advantage unchanged; {} outcomes per arm, the shift after {EFFECT_BEFORE})",
                (EFFECT_LEVEL_SHIFT - 1.0) * 100.0,
                EFFECT_BEFORE + EFFECT_LEVEL_HORIZON
            ),
            u64::try_from(alarms).unwrap_or(u64::MAX),
            runs,
            "≤ 5%".to_string(),
            |v, _, _| v <= 0.05,
        ),
    ];
    Ok((figures, 0))
}
