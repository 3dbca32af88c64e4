//! Drift detection: two-sided Page–Hinkley and CUSUM detectors and a windowed two-sample test.

use serde::{Deserialize, Serialize};

use crate::error::{finite, positive, StatsError};
use crate::frequentist::{welch_absolute, Alternative};
use crate::moments::{count_f64, Moments, SampleStats};

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
    /// A fresh detector; delta must be finite and ≥ 0, lambda finite and > 0.
    pub fn new(params: PageHinkleyParams) -> Result<Self, StatsError> {
        if !(params.delta >= 0.0 && params.delta.is_finite()) {
            return Err(StatsError::InvalidParameter {
                name: "delta",
                value: params.delta,
                expected: "finite and >= 0",
            });
        }
        positive("lambda", params.lambda)?;
        Ok(Self {
            params,
            index: 0,
            mean: Moments::new(),
            sum_up: 0.0,
            min_up: 0.0,
            sum_down: 0.0,
            max_down: 0.0,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &PageHinkleyParams {
        &self.params
    }

    /// The number of observations fed so far.
    pub fn count(&self) -> u64 {
        self.index
    }

    /// Feeds one observation; returns a signal when the detector fires.
    ///
    /// With x̄_t the running mean since the last reset, the upward statistic
    /// is m_t − min_{s≤t} m_s for m_t = Σ(x − x̄ − δ), and the downward one
    /// is max_{s≤t} M_s − M_t for M_t = Σ(x − x̄ + δ). A non-finite x is
    /// ignored (it returns `None` and is not counted).
    pub fn update(&mut self, x: f64) -> Option<DriftSignal> {
        if !x.is_finite() {
            return None;
        }
        let index = self.index;
        self.index += 1;
        self.mean.push(x);
        let centered = x - self.mean.mean();
        self.sum_up += centered - self.params.delta;
        self.min_up = self.min_up.min(self.sum_up);
        self.sum_down += centered + self.params.delta;
        self.max_down = self.max_down.max(self.sum_down);
        if self.mean.n() < self.params.min_samples {
            return None;
        }
        let up = self.sum_up - self.min_up;
        let down = self.max_down - self.sum_down;
        let signal = if up > self.params.lambda {
            Some((Direction::Up, up))
        } else if down > self.params.lambda {
            Some((Direction::Down, down))
        } else {
            None
        };
        signal.map(|(direction, statistic)| {
            self.reset();
            DriftSignal {
                index,
                direction,
                statistic,
            }
        })
    }

    fn reset(&mut self) {
        self.mean = Moments::new();
        self.sum_up = 0.0;
        self.min_up = 0.0;
        self.sum_down = 0.0;
        self.max_down = 0.0;
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
    /// A detector that learns its reference from the first `warmup`
    /// observations (warmup ≥ 2); slack ≥ 0 and threshold > 0.
    pub fn new(params: CusumParams) -> Result<Self, StatsError> {
        Self::check(&params)?;
        if params.warmup < 2 {
            return Err(StatsError::InvalidParameter {
                name: "warmup",
                value: count_f64(params.warmup),
                expected: "at least 2 when no reference is given",
            });
        }
        Ok(Self {
            params,
            index: 0,
            reference: Moments::new(),
            fixed_reference: None,
            upper: 0.0,
            lower: 0.0,
        })
    }

    /// A detector with a known reference mean and sd (sd > 0); no warm-up.
    pub fn with_reference(params: CusumParams, mean: f64, sd: f64) -> Result<Self, StatsError> {
        Self::check(&params)?;
        finite("reference mean", mean)?;
        positive("reference sd", sd)?;
        Ok(Self {
            params,
            index: 0,
            reference: Moments::new(),
            fixed_reference: Some((mean, sd)),
            upper: 0.0,
            lower: 0.0,
        })
    }

    fn check(params: &CusumParams) -> Result<(), StatsError> {
        if !(params.slack >= 0.0 && params.slack.is_finite()) {
            return Err(StatsError::InvalidParameter {
                name: "slack",
                value: params.slack,
                expected: "finite and >= 0",
            });
        }
        positive("threshold", params.threshold)?;
        Ok(())
    }

    /// The parameters.
    pub fn params(&self) -> &CusumParams {
        &self.params
    }

    /// The number of observations fed so far.
    pub fn count(&self) -> u64 {
        self.index
    }

    /// The reference (mean, sd) in use, once known.
    pub fn reference(&self) -> Option<(f64, f64)> {
        self.fixed_reference.or_else(|| {
            let ready = self.reference.n() >= self.params.warmup && self.reference.sd() > 0.0;
            ready.then(|| (self.reference.mean(), self.reference.sd()))
        })
    }

    /// Feeds one observation; returns a signal when either sum crosses the
    /// threshold. With z = (x − μ0)/σ0: S⁺ = max(0, S⁺ + z − k) and
    /// S⁻ = max(0, S⁻ − z − k). During warm-up (and while the warm-up data
    /// have zero spread) x joins the reference instead. A non-finite x is
    /// ignored.
    pub fn update(&mut self, x: f64) -> Option<DriftSignal> {
        if !x.is_finite() {
            return None;
        }
        let index = self.index;
        self.index += 1;
        let Some((mean, sd)) = self.reference() else {
            self.reference.push(x);
            return None;
        };
        let z = (x - mean) / sd;
        self.upper = (self.upper + z - self.params.slack).max(0.0);
        self.lower = (self.lower - z - self.params.slack).max(0.0);
        let signal = if self.upper > self.params.threshold {
            Some((Direction::Up, self.upper))
        } else if self.lower > self.params.threshold {
            Some((Direction::Down, self.lower))
        } else {
            None
        };
        signal.map(|(direction, statistic)| {
            self.upper = 0.0;
            self.lower = 0.0;
            DriftSignal {
                index,
                direction,
                statistic,
            }
        })
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
    let test = welch_absolute(reference, recent, alpha, Alternative::TwoSided)?;
    let shifted = test.p_value < alpha;
    let direction = match (shifted, test.estimate > 0.0) {
        (false, _) => None,
        (true, true) => Some(Direction::Up),
        (true, false) => Some(Direction::Down),
    };
    Ok(WindowTest {
        p_value: test.p_value,
        shifted,
        direction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ph() -> PageHinkley {
        PageHinkley::new(PageHinkleyParams {
            delta: 0.1,
            lambda: 5.0,
            min_samples: 10,
        })
        .unwrap()
    }

    #[test]
    fn page_hinkley_stays_quiet_on_a_constant_stream_and_reports_a_drop() {
        let mut d = ph();
        assert!((0..500).all(|_| d.update(1.0).is_none()));
        let signal = (0..100).find_map(|_| d.update(0.0)).unwrap();
        assert_eq!(signal.direction, Direction::Down);
        assert!(500 <= signal.index && signal.index < 520, "{signal:?}");
        assert!(signal.statistic > 5.0);
        assert_eq!(d.update(f64::NAN), None);
    }

    #[test]
    fn detectors_resume_identically_after_persisting() {
        let xs: Vec<f64> = (0..300_u32)
            .map(|i| f64::from(i % 5) + if i > 200 { 3.0 } else { 0.0 })
            .collect();
        let mut straight = ph();
        let mut first = ph();
        let mut cusum = Cusum::new(CusumParams {
            slack: 0.5,
            threshold: 4.0,
            warmup: 50,
        })
        .unwrap();
        let mut cusum_straight = cusum.clone();
        let mut signals = Vec::new();
        for &x in &xs[..150] {
            first.update(x);
            cusum.update(x);
        }
        let mut resumed: PageHinkley =
            serde_json::from_str(&serde_json::to_string(&first).unwrap()).unwrap();
        let mut cusum_resumed: Cusum =
            serde_json::from_str(&serde_json::to_string(&cusum).unwrap()).unwrap();
        for (i, &x) in xs.iter().enumerate() {
            let a = straight.update(x);
            let c = cusum_straight.update(x);
            if i >= 150 {
                assert_eq!(a, resumed.update(x));
                assert_eq!(c, cusum_resumed.update(x));
                signals.extend(a);
            }
        }
        assert!(signals
            .iter()
            .any(|s| s.direction == Direction::Up && s.index > 200));
    }

    #[test]
    fn cusum_with_a_known_reference_fires_where_the_sums_cross() {
        let params = CusumParams {
            slack: 0.5,
            threshold: 4.0,
            warmup: 0,
        };
        let mut c = Cusum::with_reference(params, 0.0, 1.0).unwrap();
        // Each observation of 2 adds 1.5 to S⁺, so it crosses 4 at the third.
        assert_eq!(c.update(2.0), None);
        assert_eq!(c.update(2.0), None);
        let s = c.update(2.0).unwrap();
        assert_eq!((s.index, s.direction), (2, Direction::Up));
        assert!((s.statistic - 4.5).abs() < 1e-12);
        assert!(Cusum::new(params).is_err());
        assert!(Cusum::with_reference(params, 0.0, 0.0).is_err());
    }

    #[test]
    fn window_test_reports_the_direction() {
        let reference = SampleStats::new(500.0, 10.0, 9.0);
        let down = window_test(&reference, &SampleStats::new(100.0, 8.0, 9.0), 0.01).unwrap();
        assert!(down.shifted && down.direction == Some(Direction::Down));
        let same = window_test(&reference, &SampleStats::new(100.0, 10.1, 9.0), 0.01).unwrap();
        assert!(!same.shifted && same.direction.is_none());
    }
}
