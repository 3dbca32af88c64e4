//! Sample ratio mismatch: chi-square goodness of fit of assigned units against expected shares.

use serde::{Deserialize, Serialize};

use crate::dist::chi2_sf;
use crate::moments::len_f64;

/// The p-value below which a sample ratio mismatch is flagged (GrowthBook's
/// `DEFAULT_SRM_THRESHOLD`).
pub const SRM_THRESHOLD: f64 = 0.001;

/// The result of an SRM check.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Srm {
    /// The chi-square statistic Σ(o−e)²/e.
    pub chi2: f64,
    /// P(χ²_{k−1} > chi2), 1 when fewer than two arms count.
    pub p_value: f64,
    /// Whether p_value ≥ `SRM_THRESHOLD`.
    pub ok: bool,
}

/// Chi-square goodness of fit of `observed` unit counts against
/// `expected_weights` (any positive scale, for example logged propensity
/// sums), with GrowthBook's TypeScript `checkSrm` semantics:
///
/// - only arms present in both slices count, and an arm whose weight is not
///   a positive finite number is dropped together with its units (df = the
///   number of remaining arms − 1);
/// - an arm with a negative or non-finite count is dropped as well;
/// - fewer than two remaining arms, or no units at all, give chi2 = 0 and
///   p = 1.
pub fn srm(observed: &[f64], expected_weights: &[f64]) -> Srm {
    let arms: Vec<(f64, f64)> = observed
        .iter()
        .zip(expected_weights)
        .filter(|&(&o, &w)| w.is_finite() && w > 0.0 && o.is_finite() && o >= 0.0)
        .map(|(&o, &w)| (o, w))
        .collect();
    let total: f64 = arms.iter().map(|&(o, _)| o).sum();
    let total_weight: f64 = arms.iter().map(|&(_, w)| w).sum();
    if arms.len() < 2 || total <= 0.0 {
        return Srm {
            chi2: 0.0,
            p_value: 1.0,
            ok: true,
        };
    }
    let chi2: f64 = arms
        .iter()
        .map(|&(o, w)| {
            let e = w / total_weight * total;
            (o - e) * (o - e) / e
        })
        .sum();
    let df = len_f64(arms.len() - 1);
    let p_value = chi2_sf(chi2, df).clamp(0.0, 1.0);
    Srm {
        chi2,
        p_value,
        ok: p_value >= SRM_THRESHOLD,
    }
}
