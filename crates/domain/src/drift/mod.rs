//! Drift monitoring: per metric and arm, Page–Hinkley, two-sided CUSUM and a windowed two-sample test over the outcome stream.
//!
//! The store keeps one [`DriftMonitor`] per (experiment, epoch) and calls
//! [`DriftMonitor::observe`] with every recorded outcome; the monitor is serde-serializable so
//! it can be persisted beside the aggregates. Its memory is bounded: per monitored
//! (metric, arm) stream it holds the reference moments, the two detectors' state and a ring
//! buffer of the last `recent_window` values.
//!
//! How a stream works, with the spec's `drift` settings (defaults in brackets, see
//! [`crate::spec::DriftSpec`]):
//! 1. The first `reference_window` [500] values of the stream form the reference: its mean μ
//!    and standard deviation σ. A binary metric whose reference holds only one value uses the
//!    Jeffreys-smoothed σ = √(p̃(1 − p̃)), p̃ = (k + ½)/(n + 1); any other metric with σ = 0
//!    keeps extending its reference until the values vary.
//! 2. After that every value x feeds
//!    - a ring buffer of the last `recent_window` [200] values, compared with the reference by
//!      Welch's two-sample test at `window_alpha` [0.001];
//!    - Page–Hinkley on z = (x − μ)/σ with δ = `page_hinkley.delta` [0.1] and
//!      λ = `page_hinkley.lambda` [50] (both in reference sds), silent for the first
//!      [`PH_MIN_SAMPLES`] values;
//!    - a two-sided tabular CUSUM with reference (μ, σ), slack `cusum.slack` [0.25] and
//!      threshold `cusum.threshold` [15] (in reference sds).
//!
//!    A Page–Hinkley or CUSUM alarm is a candidate: it becomes a detection when the recent
//!    window (at least [`MIN_CONFIRM`] values) differs from the reference by the two-sample
//!    test in the same direction. A per-event CUSUM against a reference of a few hundred
//!    values drifts into false alarms on long stationary streams (the reference's own error
//!    acts as a small permanent shift, and skewed metrics such as durations or rare binary
//!    outcomes cross the threshold far more often than normal theory says); the
//!    confirmation keeps its speed on real shifts without those alarms.
//!
//!    The window test also detects on its own: each time the buffer has been filled afresh
//!    (tumbling windows) it is tested, and two consecutive significant windows in the same
//!    direction are a detection, so repeated looks do not add up to false alarms.
//! 3. A detection is recorded with the timestamp of the event that triggered it, its direction
//!    and its detector, and the stream starts over (a new reference is learned from the values
//!    that follow), so each regime change is reported once.
//!
//! Detections beyond [`MAX_DETECTIONS`] are counted, not kept.
//!
//! These level detections are **workload drift**: a change in an arm's level, which a
//! change shared by all arms (season, workload mix) causes as well; they never start a new
//! epoch by themselves. Beside them the monitor watches each comparison's **effect** (see
//! [`effect`]): the treatment's relative lift over the baseline, window by window; a change in
//! it is what `auto_rebaseline` acts on. It also keeps the first time each (arm, model
//! version) was seen, for the over-time chart's markers.
//!
//! The fields added for the effect and the model versions are `serde(default)`, so a monitor
//! stored before them reads as one whose effect streams start now.

pub mod effect;

use std::collections::VecDeque;

use liftlab_stats::{
    window_test, Cusum, CusumParams, Direction, DriftSignal, Moments, PageHinkley,
    PageHinkleyParams, SampleStats,
};
use serde::{Deserialize, Serialize};

use effect::EffectStream;
pub use effect::{EffectDetection, EffectEstimate};

use crate::model::{Millis, Outcome};
use crate::spec::{DriftSpec, ExperimentSpec, MetricKind};

/// Page–Hinkley raises no alarm in the first this many values after its reference is set.
pub const PH_MIN_SAMPLES: u64 = 30;

/// The fewest recent values with which a Page–Hinkley or CUSUM alarm can be confirmed.
pub const MIN_CONFIRM: u64 = 30;

/// The most detections a monitor keeps; later ones are only counted.
pub const MAX_DETECTIONS: usize = 100;

/// Which way a metric moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShiftDirection {
    /// The mean went up.
    Up,
    /// The mean went down.
    Down,
}

impl ShiftDirection {
    /// `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            ShiftDirection::Up => "up",
            ShiftDirection::Down => "down",
        }
    }
}

impl From<Direction> for ShiftDirection {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Up => ShiftDirection::Up,
            Direction::Down => ShiftDirection::Down,
        }
    }
}

/// Which detector fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// The Page–Hinkley test.
    PageHinkley,
    /// The two-sided CUSUM.
    Cusum,
    /// The windowed two-sample test (recent window against the reference).
    Window,
}

impl Detector {
    /// `page_hinkley`, `cusum` or `window`.
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::PageHinkley => "page_hinkley",
            Detector::Cusum => "cusum",
            Detector::Window => "window",
        }
    }
}

/// One detected shift.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The metric that shifted.
    pub metric: String,
    /// The arm whose stream shifted.
    pub arm: String,
    /// The timestamp of the event at which the shift was detected.
    pub detected_at: Millis,
    /// Which way.
    pub direction: ShiftDirection,
    /// Which detector fired.
    pub detector: Detector,
    /// The reference mean the shift was measured against.
    pub reference_mean: f64,
}

/// The detectors of a stream whose reference is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Armed {
    mean: f64,
    sd: f64,
    page_hinkley: PageHinkley,
    cusum: Cusum,
    recent: VecDeque<f64>,
    recent_moments: Moments,
    since_test: u64,
    pending_window: Option<ShiftDirection>,
}

/// One monitored (metric, arm) stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Stream {
    metric: String,
    arm: String,
    reference: Moments,
    armed: Option<Armed>,
}

/// The most (arm, model version) pairs a monitor keeps.
pub const MAX_MODEL_VERSIONS: usize = 100;

/// When an arm's outcomes first named a model version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelVersionSeen {
    /// The arm.
    pub arm: String,
    /// The outcome's `model_version`.
    pub model_version: String,
    /// The `ts` of the first outcome of the epoch that named it.
    pub first_seen: Millis,
}

/// The drift state of one experiment epoch: a stream per monitored (metric, arm), a stream per
/// monitored (metric, treatment) effect, the detections so far and the model versions seen.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftMonitor {
    streams: Vec<Stream>,
    detections: Vec<Detection>,
    dropped: u64,
    #[serde(default)]
    effects: Vec<EffectStream>,
    #[serde(default)]
    effect_detections: Vec<EffectDetection>,
    #[serde(default)]
    model_versions: Vec<ModelVersionSeen>,
}

impl DriftMonitor {
    /// An empty monitor (a new epoch).
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one recorded outcome: each of its values for a metric the spec's `drift` names
    /// goes (cut to the metric's cap, as folding does) to that metric's stream for the
    /// outcome's arm. Returns what was detected now.
    ///
    /// The outcome's model version is noted (first time seen per arm) whatever the spec; the
    /// rest does nothing when the spec monitors no drift. Effect detections are kept in
    /// [`DriftMonitor::effect_detections`].
    pub fn observe(&mut self, spec: &ExperimentSpec, outcome: &Outcome) -> Vec<Detection> {
        self.note_model_version(outcome);
        let Some(settings) = spec.drift() else {
            return Vec::new();
        };
        self.observe_effects(spec, settings, outcome);
        let mut found = Vec::new();
        for metric in settings.metrics() {
            let Some(&x) = outcome.metrics.get(metric) else {
                continue;
            };
            if !x.is_finite() {
                continue;
            }
            let declared = spec.metric(metric);
            let x = declared.map_or(x, |m| m.capped(x));
            let binary = declared.is_some_and(|m| m.kind() == MetricKind::Binary);
            let stream = self.stream(metric, &outcome.arm);
            if let Some((direction, detector)) = stream.push(x, settings, binary) {
                found.push(Detection {
                    metric: metric.clone(),
                    arm: outcome.arm.clone(),
                    detected_at: outcome.ts,
                    direction,
                    detector,
                    reference_mean: stream.reference.mean(),
                });
                stream.restart();
            }
        }
        for d in &found {
            if self.detections.len() < MAX_DETECTIONS {
                self.detections.push(d.clone());
            } else {
                self.dropped += 1;
            }
        }
        found
    }

    fn note_model_version(&mut self, outcome: &Outcome) {
        let Some(version) = outcome.model_version.as_deref() else {
            return;
        };
        let seen = self
            .model_versions
            .iter()
            .position(|m| m.arm == outcome.arm && m.model_version == version);
        match seen {
            Some(at) => {
                let m = &mut self.model_versions[at];
                m.first_seen = m.first_seen.min(outcome.ts);
            }
            None if self.model_versions.len() < MAX_MODEL_VERSIONS => {
                self.model_versions.push(ModelVersionSeen {
                    arm: outcome.arm.clone(),
                    model_version: version.to_string(),
                    first_seen: outcome.ts,
                });
            }
            None => {}
        }
    }

    fn observe_effects(&mut self, spec: &ExperimentSpec, settings: &DriftSpec, outcome: &Outcome) {
        let baseline = spec.baseline().key();
        for metric in settings.metrics() {
            let Some(&x) = outcome.metrics.get(metric) else {
                continue;
            };
            if !x.is_finite() {
                continue;
            }
            let x = spec.metric(metric).map_or(x, |m| m.capped(x));
            for treatment in spec.treatments() {
                let arm = treatment.key();
                if outcome.arm != arm && outcome.arm != baseline {
                    continue;
                }
                let at = self
                    .effects
                    .iter()
                    .position(|s| &s.metric == metric && s.arm == arm && s.baseline == baseline);
                let at = at.unwrap_or_else(|| {
                    self.effects.push(EffectStream::new(metric, arm, baseline));
                    self.effects.len() - 1
                });
                if let Some(d) = self.effects[at].push(&outcome.arm, x, outcome.ts) {
                    if self.effect_detections.len() < MAX_DETECTIONS {
                        self.effect_detections.push(d);
                    } else {
                        self.dropped += 1;
                    }
                }
            }
        }
    }

    /// The changes in a treatment's effect detected, oldest first: the trigger of
    /// `auto_rebaseline`.
    pub fn effect_detections(&self) -> &[EffectDetection] {
        &self.effect_detections
    }

    /// The first time each (arm, model version) was seen in the epoch, in the order first seen.
    pub fn model_versions(&self) -> &[ModelVersionSeen] {
        &self.model_versions
    }

    /// The level detections kept (workload drift), oldest first.
    pub fn detections(&self) -> &[Detection] {
        &self.detections
    }

    /// Detections beyond [`MAX_DETECTIONS`], counted but not kept.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// True when nothing was detected.
    pub fn is_quiet(&self) -> bool {
        self.detections.is_empty() && self.effect_detections.is_empty() && self.dropped == 0
    }

    /// Records a detection directly (tests that need a fixed timestamp).
    #[cfg(test)]
    pub(crate) fn push_detection_for_tests(&mut self, detection: Detection) {
        self.detections.push(detection);
    }

    /// Records an effect detection directly (tests that need fixed numbers).
    #[cfg(test)]
    pub(crate) fn push_effect_detection_for_tests(&mut self, detection: EffectDetection) {
        self.effect_detections.push(detection);
    }

    fn stream(&mut self, metric: &str, arm: &str) -> &mut Stream {
        let at = self
            .streams
            .iter()
            .position(|s| s.metric == metric && s.arm == arm);
        let at = match at {
            Some(at) => at,
            None => {
                self.streams.push(Stream {
                    metric: metric.to_string(),
                    arm: arm.to_string(),
                    reference: Moments::new(),
                    armed: None,
                });
                self.streams.len() - 1
            }
        };
        &mut self.streams[at]
    }
}

/// The reference standard deviation used to standardize, or `None` while it is not usable yet.
fn reference_sd(reference: &Moments, binary: bool) -> Option<f64> {
    let sd = reference.sd();
    if sd > 0.0 && sd.is_finite() {
        return Some(sd);
    }
    if binary && reference.n() > 0 {
        let n = crate::count_f64_u64(reference.n());
        let p = (reference.sum() + 0.5) / (n + 1.0);
        return Some((p * (1.0 - p)).sqrt());
    }
    None
}

impl Stream {
    fn restart(&mut self) {
        self.reference = Moments::new();
        self.armed = None;
    }

    /// Feeds one value; returns a detection's direction and detector.
    fn push(
        &mut self,
        x: f64,
        settings: &DriftSpec,
        binary: bool,
    ) -> Option<(ShiftDirection, Detector)> {
        let Some(armed) = self.armed.as_mut() else {
            self.reference.push(x);
            if self.reference.n() >= settings.reference_window() {
                self.armed = arm(&self.reference, settings, binary);
            }
            return None;
        };
        let signal = |s: Option<DriftSignal>| s.map(|s| ShiftDirection::from(s.direction));
        let z = (x - armed.mean) / armed.sd;
        let ph = signal(armed.page_hinkley.update(z));
        let cusum = signal(armed.cusum.update(x));
        let window = armed.window(x, &self.reference, settings);
        let confirm =
            |armed: &Armed, d: ShiftDirection| armed.confirms(d, &self.reference, settings);
        if let Some(d) = ph.filter(|d| confirm(armed, *d)) {
            return Some((d, Detector::PageHinkley));
        }
        if let Some(d) = cusum.filter(|d| confirm(armed, *d)) {
            return Some((d, Detector::Cusum));
        }
        window.map(|d| (d, Detector::Window))
    }
}

/// Builds the detectors once the reference is usable.
fn arm(reference: &Moments, settings: &DriftSpec, binary: bool) -> Option<Armed> {
    let sd = reference_sd(reference, binary)?;
    let mean = reference.mean();
    let ph = settings.page_hinkley();
    let page_hinkley = PageHinkley::new(PageHinkleyParams {
        delta: ph.delta(),
        lambda: ph.lambda(),
        min_samples: PH_MIN_SAMPLES,
    })
    .ok()?;
    let cs = settings.cusum();
    let cusum = Cusum::with_reference(
        CusumParams {
            slack: cs.slack(),
            threshold: cs.threshold(),
            warmup: 0,
        },
        mean,
        sd,
    )
    .ok()?;
    Some(Armed {
        mean,
        sd,
        page_hinkley,
        cusum,
        recent: VecDeque::new(),
        recent_moments: Moments::new(),
        since_test: 0,
        pending_window: None,
    })
}

impl Armed {
    /// Whether the recent window (at least [`MIN_CONFIRM`] values) differs from the reference
    /// by Welch's test at `window_alpha`, in direction `d`.
    fn confirms(&self, d: ShiftDirection, reference: &Moments, settings: &DriftSpec) -> bool {
        if self.recent_moments.n() < MIN_CONFIRM {
            return false;
        }
        window_test(
            &SampleStats::from(reference),
            &SampleStats::from(&self.recent_moments),
            settings.window_alpha(),
        )
        .is_ok_and(|t| t.shifted && t.direction.map(ShiftDirection::from) == Some(d))
    }

    /// Adds `x` to the recent window and, each time the window has been filled afresh, tests it
    /// against the reference; returns a direction on the second significant window in a row.
    fn window(
        &mut self,
        x: f64,
        reference: &Moments,
        settings: &DriftSpec,
    ) -> Option<ShiftDirection> {
        let size = settings.recent_window();
        self.recent.push_back(x);
        self.recent_moments.push(x);
        while crate::count_f64(self.recent.len()) > crate::count_f64_u64(size) {
            if let Some(old) = self.recent.pop_front() {
                // The value was pushed before, so removing it cannot fail.
                let _ = self.recent_moments.remove(old);
            }
        }
        self.since_test += 1;
        if self.since_test < size
            || crate::count_f64(self.recent.len()) < crate::count_f64_u64(size)
        {
            return None;
        }
        self.since_test = 0;
        let result = window_test(
            &SampleStats::from(reference),
            &SampleStats::from(&self.recent_moments),
            settings.window_alpha(),
        )
        .ok()?;
        let now = result
            .direction
            .filter(|_| result.shifted)
            .map(ShiftDirection::from);
        let confirmed = now.is_some() && now == self.pending_window;
        self.pending_window = now;
        if confirmed {
            now
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests;
