//! Drift detection: two-sided Page–Hinkley and CUSUM detectors and a windowed two-sample test.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;
use crate::moments::{Moments, SampleStats};

/// The direction of a detected shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// The mean went up.
    Up,
    /// The mean went down.
    Down,
}

/// A detector firing.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftSignal {
    /// The 0-based index (count of updates before this one since the
    /// detector was created) of the observation at which it fired.
    pub index: u64,
    /// The direction of the shift.
    pub direction: Direction,
    /// The detector statistic that crossed the threshold.
    pub statistic: f64,
}

/// Page–Hinkley parameters, in the metric's units.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageHinkleyParams {
    /// The magnitude of change tolerated (δ), subtracted at every step.
    pub delta: f64,
    /// The alarm threshold (λ) on the cumulative statistic.
    pub lambda: f64,
    /// No alarm before this many observations since the last reset.
    pub min_samples: u64,
}

/// A two-sided Page–Hinkley detector. After firing it resets its running
/// mean and sums (the index keeps counting), so it measures the new regime.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageHinkley {
    params: PageHinkleyParams,
    index: u64,
    mean: Moments,
    sum_up: f64,
    min_up: f64,
    sum_down: f64,
    max_down: f64,
}

impl PageHinkley {
    /// A fresh detector; delta must be ≥ 0 and lambda > 0.
    pub fn new(params: PageHinkleyParams) -> Result<Self, StatsError> {
        todo!("{params:?}")
    }

    /// The parameters.
    pub fn params(&self) -> &PageHinkleyParams {
        &self.params
    }

    /// Feeds one observation; returns a signal when the detector fires.
    pub fn update(&mut self, x: f64) -> Option<DriftSignal> {
        todo!("{x}")
    }
}

/// Two-sided CUSUM parameters, in units of the reference standard deviation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CusumParams {
    /// The slack k (allowance), typically half the shift to detect, in sds.
    pub slack: f64,
    /// The decision threshold h, in sds (4–5 is usual).
    pub threshold: f64,
    /// The number of first observations that estimate the reference mean
    /// and sd when none is given; no alarm before then.
    pub warmup: u64,
}

/// A two-sided tabular CUSUM on standardized observations. After firing it
/// resets both sums (the reference is kept).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cusum {
    params: CusumParams,
    index: u64,
    reference: Moments,
    fixed_reference: Option<(f64, f64)>,
    upper: f64,
    lower: f64,
}

impl Cusum {
    /// A detector that learns its reference from the first `warmup` observations.
    pub fn new(params: CusumParams) -> Result<Self, StatsError> {
        todo!("{params:?}")
    }

    /// A detector with a known reference mean and sd (sd > 0); no warm-up.
    pub fn with_reference(params: CusumParams, mean: f64, sd: f64) -> Result<Self, StatsError> {
        todo!("{params:?}{mean}{sd}")
    }

    /// The parameters.
    pub fn params(&self) -> &CusumParams {
        &self.params
    }

    /// Feeds one observation; returns a signal when either sum crosses the threshold.
    pub fn update(&mut self, x: f64) -> Option<DriftSignal> {
        todo!("{x}")
    }
}

/// The result of comparing a recent window with its reference.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowTest {
    /// Welch's two-sided p-value of recent against reference.
    pub p_value: f64,
    /// Whether p_value < alpha.
    pub shifted: bool,
    /// The direction of the recent mean relative to the reference, when shifted.
    pub direction: Option<Direction>,
}

/// Welch's two-sided test of a recent window against a reference window.
pub fn window_test(
    reference: &SampleStats,
    recent: &SampleStats,
    alpha: f64,
) -> Result<WindowTest, StatsError> {
    todo!("{reference:?}{recent:?}{alpha}")
}
