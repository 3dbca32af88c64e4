//! Multiple-testing corrections: Holm–Bonferroni, Benjamini–Hochberg and GrowthBook's adjusted intervals.

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
}
