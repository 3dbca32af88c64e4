//! Drift on the effect: per drift metric and treatment, a CUSUM on the change in the relative lift over the baseline, window by window.
//!
//! How a comparison (metric, treatment against the baseline) is watched:
//! 1. Outcomes of the two arms fill a window; it closes when each arm holds at least
//!    [`EFFECT_WINDOW`] values. Its relative lift is r = (m_T − m_B)/|m_B| (the decision's scale)
//!    with the delta-method variance v = s_T²/(n_T m_B²) + m_T² s_B²/(n_B m_B⁴).
//! 2. The first [`EFFECT_REFERENCE_WINDOWS`] windows are pooled into the reference effect r₀
//!    (its variance v₀ from the pooled moments). Later windows after which both CUSUM sums
//!    stand below [`EFFECT_JOIN`] (little evidence of a change) join the reference too, so its
//!    own error, which otherwise acts as a small permanent shift and makes a long stationary
//!    run alarm, keeps shrinking; windows that push a sum past it stay out.
//! 3. Every later window gives z = (m_T − ρ₀ m_B)/(L √(v + v₀)), ρ₀ = 1 + r₀, where
//!    L = (m_T + m_B)/(1 + ρ₀) is the window's baseline level estimated from both arms and v is
//!    computed with the reference's coefficients of variation, v = ρ₀² (cv_T²/n_T + cv_B²/n_B).
//!    This is (r − r₀)/√(v + v₀) with the window's noisy m_B replaced by L: dividing by a
//!    window's own baseline mean, or by its own variance estimate (which moves with its mean on
//!    skewed data such as durations or rare binary outcomes), makes z skewed and the CUSUM
//!    alarm falsely. A level shift shared by all arms changes neither ρ₀ nor the cvs. z is fed to a two-sided tabular CUSUM with
//!    slack [`EFFECT_SLACK`] and threshold [`EFFECT_THRESHOLD`]. Crossing the threshold is an
//!    effect detection: "before" is r₀ with its 95% interval, "after" the lift of the windows
//!    pooled since that side's sum last stood at zero (the CUSUM's estimate of the change
//!    point), with its 95% interval. The comparison then learns a new reference.
//!
//! The lift is a ratio of the arms' levels, so a level shift that multiplies every arm by the
//! same factor (workload drift) leaves it unchanged and raises no effect alarm; a change in the
//! treatment's advantage moves it. A window whose baseline mean is 0, or whose variance is not
//! finite, is skipped.

use liftlab_stats::Moments;
use serde::{Deserialize, Serialize};

use crate::count_f64_u64;
use crate::model::Millis;

/// Outcomes per arm in one effect window.
pub const EFFECT_WINDOW: u64 = 100;

/// Windows pooled into the reference effect.
pub const EFFECT_REFERENCE_WINDOWS: u64 = 20;

/// The CUSUM's slack, in standard errors of one window's change.
///
/// The reference effect is learned from a few thousand outcomes, so its own error (about
/// 1/√20 of a window's standard error) shifts every later z alike: it shrinks a real change
/// and fakes a small one. A small slack keeps detecting through that error, and windows keep
/// joining the reference while both sums stay below [`EFFECT_JOIN`], so a fake shift fades as
/// the reference grows instead of drifting to the threshold over a long watch
/// (docs/CALIBRATION.md measures detection and false alarms over the same 10,000 outcomes).
pub const EFFECT_SLACK: f64 = 0.25;

/// The CUSUM's threshold, in standard errors of one window's change.
pub const EFFECT_THRESHOLD: f64 = 13.0;

/// A window joins the reference while both CUSUM sums stay below this, in standard errors of
/// one window's change: half the threshold. A real change passes it within a few windows, so
/// it dilutes the reference only a little; a fake one, from the reference's own error, keeps
/// feeding the reference until it fades.
pub const EFFECT_JOIN: f64 = EFFECT_THRESHOLD / 2.0;

/// The normal quantile of the 95% intervals of the before/after effects.
const Z95: f64 = 1.959_963_984_540_054;

/// A relative lift with its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EffectEstimate {
    /// (m_T − m_B)/|m_B|.
    pub estimate: f64,
    /// Lower end of the 95% interval.
    pub ci_low: f64,
    /// Upper end of the 95% interval.
    pub ci_high: f64,
}

/// One detected change in a treatment's effect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EffectDetection {
    /// The metric whose effect changed.
    pub metric: String,
    /// The treatment arm.
    pub arm: String,
    /// The baseline it is compared with.
    pub baseline: String,
    /// The timestamp of the event that closed the alarming window.
    pub detected_at: Millis,
    /// The reference effect.
    pub effect_before: EffectEstimate,
    /// The effect since the estimated change point.
    pub effect_after: EffectEstimate,
}

/// The CUSUM state of an armed comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Armed {
    lift: f64,
    var: f64,
    /// (m_T/m_B)², cv_T² and cv_B² of the reference.
    scale: (f64, f64, f64),
    up: f64,
    down: f64,
    run_up: (Moments, Moments),
    run_down: (Moments, Moments),
}

/// One watched comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct EffectStream {
    pub(crate) metric: String,
    pub(crate) arm: String,
    pub(crate) baseline: String,
    window: (Moments, Moments),
    reference: (Moments, Moments),
    reference_windows: u64,
    armed: Option<Armed>,
}

/// Relative lift and its delta-method variance from the two arms' moments.
fn lift(t: &Moments, b: &Moments) -> Option<(f64, f64)> {
    let (mt, mb) = (t.mean(), b.mean());
    if mb == 0.0 || t.n() < 2 || b.n() < 2 {
        return None;
    }
    let vt = t.variance() / count_f64_u64(t.n());
    let vb = b.variance() / count_f64_u64(b.n());
    let r = (mt - mb) / mb.abs();
    let v = vt / (mb * mb) + mt * mt * vb / (mb * mb * mb * mb);
    (r.is_finite() && v.is_finite() && v > 0.0).then_some((r, v))
}

/// The reference's lift, its variance and its scale ((m_T/m_B)², cv_T², cv_B²), when usable.
fn reference_effect(reference: &(Moments, Moments)) -> Option<(f64, f64, (f64, f64, f64))> {
    let (t, b) = reference;
    let (mt, mb) = (t.mean(), b.mean());
    let scale = (
        (mt / mb).powi(2),
        t.variance() / (mt * mt),
        b.variance() / (mb * mb),
    );
    let usable = [scale.0, scale.1, scale.2].iter().all(|x| x.is_finite());
    let (lift, var) = lift(t, b)?;
    usable.then_some((lift, var, scale))
}

fn estimate(r: f64, v: f64) -> EffectEstimate {
    let half = Z95 * v.sqrt();
    EffectEstimate {
        estimate: r,
        ci_low: r - half,
        ci_high: r + half,
    }
}

fn merge(into: &mut (Moments, Moments), from: &(Moments, Moments)) {
    into.0.merge(&from.0);
    into.1.merge(&from.1);
}

impl EffectStream {
    pub(crate) fn new(metric: &str, arm: &str, baseline: &str) -> Self {
        Self {
            metric: metric.to_string(),
            arm: arm.to_string(),
            baseline: baseline.to_string(),
            window: (Moments::new(), Moments::new()),
            reference: (Moments::new(), Moments::new()),
            reference_windows: 0,
            armed: None,
        }
    }

    /// Feeds one value of `arm` (the treatment or the baseline of this comparison) at `ts`;
    /// returns a detection when a window closes with the CUSUM past its threshold.
    pub(crate) fn push(&mut self, arm: &str, x: f64, ts: Millis) -> Option<EffectDetection> {
        if arm == self.arm {
            self.window.0.push(x);
        } else if arm == self.baseline {
            self.window.1.push(x);
        } else {
            return None;
        }
        if self.window.0.n() < EFFECT_WINDOW || self.window.1.n() < EFFECT_WINDOW {
            return None;
        }
        let window = std::mem::replace(&mut self.window, (Moments::new(), Moments::new()));
        let Some(armed) = self.armed.as_mut() else {
            merge(&mut self.reference, &window);
            self.reference_windows += 1;
            if self.reference_windows >= EFFECT_REFERENCE_WINDOWS {
                self.armed = reference_effect(&self.reference).map(|(lift, var, scale)| Armed {
                    lift,
                    var,
                    scale,
                    up: 0.0,
                    down: 0.0,
                    run_up: (Moments::new(), Moments::new()),
                    run_down: (Moments::new(), Moments::new()),
                });
            }
            return None;
        };
        let (r, _) = lift(&window.0, &window.1)?;
        let (ratio2, cv2_t, cv2_b) = armed.scale;
        let rho = 1.0 + armed.lift;
        let (mt, mb) = (window.0.mean(), window.1.mean());
        // The window's baseline level, estimated from both arms as the reference ratio says.
        let level = (mt + mb) / (1.0 + rho);
        if level == 0.0 {
            return None;
        }
        let v =
            ratio2 * (cv2_t / count_f64_u64(window.0.n()) + cv2_b / count_f64_u64(window.1.n()));
        let z = (mt - rho * mb) / (level * (v + armed.var).sqrt());
        if !z.is_finite() {
            return None;
        }
        armed.up = (armed.up + z - EFFECT_SLACK).max(0.0);
        armed.down = (armed.down - z - EFFECT_SLACK).max(0.0);
        for (sum, run) in [
            (armed.up, &mut armed.run_up),
            (armed.down, &mut armed.run_down),
        ] {
            if sum > 0.0 {
                merge(run, &window);
            } else {
                *run = (Moments::new(), Moments::new());
            }
        }
        if armed.up < EFFECT_JOIN && armed.down < EFFECT_JOIN {
            // Little evidence of a change: the window joins the reference, so the reference's
            // own error (which otherwise acts as a permanent small shift) keeps shrinking.
            let mut grown = self.reference;
            merge(&mut grown, &window);
            if let Some((lift, var, scale)) = reference_effect(&grown) {
                (armed.lift, armed.var, armed.scale) = (lift, var, scale);
                self.reference = grown;
                self.reference_windows += 1;
            }
            return None;
        }
        let run = if armed.up > EFFECT_THRESHOLD {
            &armed.run_up
        } else if armed.down > EFFECT_THRESHOLD {
            &armed.run_down
        } else {
            return None;
        };
        let after = lift(&run.0, &run.1).map_or(estimate(r, v), |(r, v)| estimate(r, v));
        let detection = EffectDetection {
            metric: self.metric.clone(),
            arm: self.arm.clone(),
            baseline: self.baseline.clone(),
            detected_at: ts,
            effect_before: estimate(armed.lift, armed.var),
            effect_after: after,
        };
        self.reference = (Moments::new(), Moments::new());
        self.reference_windows = 0;
        self.armed = None;
        Some(detection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `n` values of each arm, alternating, all at `ts`.
    fn feed(s: &mut EffectStream, t: &[f64], b: &[f64], ts: Millis) -> Vec<EffectDetection> {
        let mut out = Vec::new();
        for (x, y) in t.iter().zip(b) {
            out.extend(s.push("ai", *x, ts));
            out.extend(s.push("human", *y, ts));
        }
        out
    }

    /// A window of [`EFFECT_WINDOW`] values per arm alternating between `lo` and `hi`.
    fn window(lo: f64, hi: f64) -> Vec<f64> {
        (0..EFFECT_WINDOW)
            .map(|i| if i % 2 == 0 { lo } else { hi })
            .collect()
    }

    #[test]
    fn lift_and_its_variance_by_hand() {
        // T: 1, 3 (mean 2, var 2); B: 4, 6 (mean 5, var 2); n = 2 each.
        let mut t = Moments::new();
        [1.0, 3.0].iter().for_each(|x| t.push(*x));
        let mut b = Moments::new();
        [4.0, 6.0].iter().for_each(|x| b.push(*x));
        let (r, v) = lift(&t, &b).unwrap();
        // r = (2 − 5)/5 = −0.6; v = 1/25 + 4·1/625 = 0.0464.
        assert!((r + 0.6).abs() < 1e-12);
        assert!((v - 0.0464).abs() < 1e-12);
    }

    #[test]
    fn a_shared_level_shift_is_not_an_effect_change_and_a_changed_advantage_is() {
        let mut s = EffectStream::new("cycle_time", "ai", "human");
        // Reference: T 7..9 (mean 8), B 9..11 (mean 10): lift −0.2.
        for _ in 0..EFFECT_REFERENCE_WINDOWS {
            assert!(feed(&mut s, &window(7.0, 9.0), &window(9.0, 11.0), 1).is_empty());
        }
        // Both arms × 1.3: the lift stays −0.2.
        for _ in 0..50 {
            let found = feed(&mut s, &window(9.1, 11.7), &window(11.7, 14.3), 2);
            assert!(found.is_empty(), "{found:?}");
        }
        // The advantage shrinks to −0.1 (T 11.7 against B 13): detected.
        let mut found = Vec::new();
        for _ in 0..50 {
            found.extend(feed(&mut s, &window(10.7, 12.7), &window(11.7, 14.3), 3));
            if !found.is_empty() {
                break;
            }
        }
        let d = found.first().expect("the changed advantage is detected");
        assert_eq!(
            (d.arm.as_str(), d.baseline.as_str(), d.detected_at),
            ("ai", "human", 3)
        );
        // The first changed windows, while the sum is below the joining bar, join the
        // reference: with k of them it pools T = (20·8 + 50·10.4 + 11.7k) over
        // B = (20·10 + 50·13 + 13k), a little above −0.2 (−0.19849 for k = 1).
        let joined = |k: f64| (680.0 + 11.7 * k) / (850.0 + 13.0 * k) - 1.0;
        let before = d.effect_before.estimate;
        assert!(
            (1..=3).any(|k| (before - joined(f64::from(k))).abs() < 1e-9),
            "{before}"
        );
        assert!(d.effect_before.ci_low < -0.2 && -0.2 < d.effect_before.ci_high);
        assert!((d.effect_after.estimate + 0.1).abs() < 1e-9);
        assert!(d.effect_after.ci_low < -0.1 && -0.1 < d.effect_after.ci_high);
    }

    #[test]
    fn cusum_step_by_hand() {
        let mut s = EffectStream::new("m", "ai", "human");
        for _ in 0..EFFECT_REFERENCE_WINDOWS {
            feed(&mut s, &window(7.0, 9.0), &window(9.0, 11.0), 1);
        }
        // Reference: n = 2000 each; T var = 1·2000/1999, B the same; r₀ = −0.2,
        // v₀ = (1.0005/2000)/100 + 64·(1.0005/2000)/10⁴ = 8.2041e−6.
        let v0: f64 = (2000.0 / 1999.0 / 2000.0) * (1.0 / 100.0 + 64.0 / 10_000.0);
        assert!((s.armed.as_ref().unwrap().var - v0).abs() < 1e-15);
        // One window of T 8..10 (mean 9): r = −0.1; L = (9 + 10)/1.8 = 10.5556, ρ₀ = 0.8, with
        // the reference's cvs v = 0.64 (1.0005/64 + 1.0005/100)/100 = 1.64082e−4, so
        // z = (9 − 8)/(L √(v + v₀)) = 7.2176: S⁺ = z − 0.25 = 6.9676, below 13, and above the
        // joining bar 6.5, so the window stays out of the reference.
        assert!(feed(&mut s, &window(8.0, 10.0), &window(9.0, 11.0), 4).is_empty());
        let var = 2000.0 / 1999.0;
        let v = 0.64 * (var / 64.0 + var / 100.0) / 100.0;
        let z = 1.0 / (19.0 / 1.8 * (v + v0).sqrt());
        assert!((z - 7.2176).abs() < 1e-4, "{z}");
        let up = s.armed.as_ref().unwrap().up;
        assert!((up - (z - EFFECT_SLACK)).abs() < 1e-9, "{up} {z}");
        assert!((up - 6.9676).abs() < 1e-4, "{up}");
        assert_eq!(s.reference_windows, EFFECT_REFERENCE_WINDOWS, "not joined");
        // The second such window adds z − 0.25 again: S⁺ = 13.935 passes 13; the after effect
        // pools the two windows with their own delta-method variance.
        let found = feed(&mut s, &window(8.0, 10.0), &window(9.0, 11.0), 5);
        assert_eq!(found.len(), 1);
        let v: f64 = (200.0 / 199.0 / 200.0) * (1.0 / 100.0 + 81.0 / 10_000.0);
        let after = found[0].effect_after;
        assert!((after.estimate + 0.1).abs() < 1e-12);
        assert!((after.ci_high - after.estimate - Z95 * v.sqrt()).abs() < 1e-12);
    }
}
