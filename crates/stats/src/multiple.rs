//! Multiple-testing corrections: Holm–Bonferroni, Benjamini–Hochberg, and the intervals that agree with their adjusted p-values.

use crate::dist::norm_ppf;
use crate::error::{check_alpha, finite, StatsError};
use crate::moments::len_f64;

/// Checks that every p-value lies in [0, 1].
fn check_p_values(p_values: &[f64]) -> Result<(), StatsError> {
    match p_values.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        Some(&p) => Err(StatsError::InvalidParameter {
            name: "p-value",
            value: p,
            expected: "in [0, 1]",
        }),
        None => Ok(()),
    }
}

/// The indices of `p_values` in ascending order of p (stable for ties).
fn ascending(p_values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p_values.len()).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    order
}

/// Holm–Bonferroni adjusted p-values, in the order given
/// (= statsmodels `multipletests(method="holm")`).
///
/// The k-th smallest p (k from 0) becomes max over j ≤ k of min(1, (m − j)·p_(j)).
pub fn holm(p_values: &[f64]) -> Result<Vec<f64>, StatsError> {
    check_p_values(p_values)?;
    let m = len_f64(p_values.len());
    let mut adjusted = vec![0.0; p_values.len()];
    let mut running = 0.0_f64;
    for (rank, &i) in ascending(p_values).iter().enumerate() {
        running = running.max(((m - len_f64(rank)) * p_values[i]).min(1.0));
        adjusted[i] = running;
    }
    Ok(adjusted)
}

/// Benjamini–Hochberg adjusted p-values (false discovery rate), in the order
/// given (= statsmodels `multipletests(method="fdr_bh")`).
///
/// The k-th smallest p (rank k from 1) becomes min over j ≥ k of min(1, m·p_(j)/j).
pub fn benjamini_hochberg(p_values: &[f64]) -> Result<Vec<f64>, StatsError> {
    check_p_values(p_values)?;
    let m = len_f64(p_values.len());
    let mut adjusted = vec![0.0; p_values.len()];
    let mut running = 1.0_f64;
    for (rank, &i) in ascending(p_values).iter().enumerate().rev() {
        running = running.min(m * p_values[i] / len_f64(rank + 1));
        adjusted[i] = running;
    }
    Ok(adjusted)
}

/// GrowthBook's `adjustedCI`: the interval lift ± z_{1−α/2}·|lift/Φ⁻¹(1−p_adj/2)|
/// implied by an adjusted p-value. It is unbounded (±∞) when p_adjusted = 1
/// and collapses to the lift when p_adjusted = 0.
pub fn adjusted_ci(p_adjusted: f64, lift: f64, alpha: f64) -> Result<(f64, f64), StatsError> {
    check_p_values(&[p_adjusted])?;
    finite("lift", lift)?;
    check_alpha(alpha)?;
    let z_adj = norm_ppf(1.0 - p_adjusted / 2.0);
    if z_adj == 0.0 {
        return Ok((f64::NEG_INFINITY, f64::INFINITY));
    }
    let half = norm_ppf(1.0 - alpha / 2.0) * (lift / z_adj).abs();
    Ok((lift - half, lift + half))
}

/// The level α·p/p_adjusted at which the unadjusted interval of the same
/// test excludes 0 exactly when p_adjusted < α.
///
/// A test's interval at level a excludes 0 exactly when its p-value is
/// below a, and for p > 0, p < α·p/p_adj ⟺ p_adj < α; so the interval at
/// this level is the adjusted interval that agrees with the adjusted
/// p-value. Call the test again with this level and the same statistics
/// (for a sequential test, with the family's ρ held fixed: see
/// [`sequential_with_rho`](crate::sequential_with_rho)). Where p_adjusted
/// is 0 or equals p there is nothing to adjust and the level is α. Holm and
/// Benjamini–Hochberg never lower a p-value nor raise it more than m-fold,
/// so for them the level lies in [α/m, α]; whatever the inputs, it is
/// clamped into (0, α], and a p-value that is not a number leaves α.
///
/// GrowthBook's [`adjusted_ci`] reaches the same agreement differently: it
/// keeps α and replaces the standard error by |lift|/Φ⁻¹(1 − p_adj/2) in a
/// normal interval. This keeps the test's own standard error and
/// distribution (Student-t, confidence sequence) and changes the level.
pub fn adjusted_alpha(alpha: f64, p: f64, p_adjusted: f64) -> f64 {
    let ratio = p / p_adjusted;
    if p_adjusted > 0.0 && ratio < 1.0 {
        (alpha * ratio).clamp(f64::MIN_POSITIVE, alpha)
    } else {
        alpha
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_cases() {
        assert!(holm(&[]).unwrap().is_empty());
        assert_eq!(benjamini_hochberg(&[0.3]).unwrap(), vec![0.3]);
        assert!(holm(&[0.1, 1.2]).is_err());
        assert!(benjamini_hochberg(&[f64::NAN]).is_err());
        assert_eq!(
            adjusted_ci(1.0, 0.1, 0.05).unwrap(),
            (f64::NEG_INFINITY, f64::INFINITY)
        );
        assert_eq!(adjusted_ci(0.0, 0.1, 0.05).unwrap(), (0.1, 0.1));
    }

    #[test]
    fn adjusted_alpha_scales_the_level_by_p_over_p_adjusted() {
        assert_eq!(adjusted_alpha(0.05, 0.01, 0.04), 0.05 * 0.25);
        assert_eq!(adjusted_alpha(0.05, 0.0, 0.0), 0.05);
        assert_eq!(adjusted_alpha(0.05, 0.3, 0.3), 0.05);
        // Not from a correction: a level never exceeds alpha nor reaches 0.
        assert_eq!(adjusted_alpha(0.05, 0.4, 0.2), 0.05);
        assert_eq!(adjusted_alpha(0.05, 0.0, 0.5), f64::MIN_POSITIVE);
        assert_eq!(adjusted_alpha(0.05, f64::NAN, 0.5), 0.05);
    }
}
