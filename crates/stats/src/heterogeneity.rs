//! Heterogeneity across segments: Cochran's Q with I², and the disparate-impact ratio.

use serde::{Deserialize, Serialize};

use crate::dist::chi2_sf;
use crate::error::{finite, positive, StatsError};
use crate::moments::len_f64;

/// Cochran's Q test of equal effects across segments.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CochranQ {
    /// Q = Σ w_i (θ_i − θ̄)² with w_i = 1/se_i².
    pub q: f64,
    /// The degrees of freedom k − 1.
    pub df: f64,
    /// P(χ²_df > Q).
    pub p_value: f64,
    /// I² = max(0, (Q − df)/Q), the share of variation due to heterogeneity.
    pub i_squared: f64,
}

/// Cochran's Q over per-segment (estimate, se) pairs; needs ≥ 2 segments with se > 0.
pub fn cochran_q(segments: &[(f64, f64)]) -> Result<CochranQ, StatsError> {
    if segments.len() < 2 {
        return Err(StatsError::TooFewEntries {
            what: "Cochran's Q",
            needed: 2,
            got: segments.len(),
        });
    }
    let mut sum_w = 0.0;
    let mut sum_wx = 0.0;
    for &(estimate, se) in segments {
        finite("segment estimate", estimate)?;
        positive("segment se", se)?;
        let w = 1.0 / (se * se);
        sum_w += w;
        sum_wx += w * estimate;
    }
    let pooled = sum_wx / sum_w;
    let q: f64 = segments
        .iter()
        .map(|&(estimate, se)| ((estimate - pooled) / se).powi(2))
        .sum();
    let df = len_f64(segments.len() - 1);
    let i_squared = if q > 0.0 {
        ((q - df) / q).max(0.0)
    } else {
        0.0
    };
    Ok(CochranQ {
        q,
        df,
        p_value: chi2_sf(q, df).clamp(0.0, 1.0),
        i_squared,
    })
}

/// The disparate-impact ratio rate_group / rate_reference (the four-fifths
/// rule flags values below 0.8).
pub fn disparate_impact(rate_group: f64, rate_reference: f64) -> Result<f64, StatsError> {
    finite("group rate", rate_group)?;
    positive("reference rate", rate_reference)?;
    if rate_group < 0.0 {
        return Err(StatsError::InvalidParameter {
            name: "group rate",
            value: rate_group,
            expected: ">= 0",
        });
    }
    Ok(rate_group / rate_reference)
}

/// The smallest disparate-impact ratio over groups, against the most favored group.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DisparateImpact {
    /// min_i rate_i / max_j rate_j.
    pub ratio: f64,
    /// The index of the least favored group.
    pub group: usize,
    /// The index of the most favored group.
    pub reference: usize,
}

/// The minimum disparate-impact ratio over `rates` (each in [0, 1]) against the highest rate.
///
/// Needs at least two groups, rates in [0, 1] and a positive highest rate;
/// ties pick the first index.
pub fn disparate_impact_min(rates: &[f64]) -> Result<DisparateImpact, StatsError> {
    if rates.len() < 2 {
        return Err(StatsError::TooFewEntries {
            what: "disparate impact",
            needed: 2,
            got: rates.len(),
        });
    }
    if let Some(&bad) = rates.iter().find(|r| !(0.0..=1.0).contains(*r)) {
        return Err(StatsError::InvalidParameter {
            name: "group rate",
            value: bad,
            expected: "in [0, 1]",
        });
    }
    let (mut group, mut reference) = (0, 0);
    for (i, &r) in rates.iter().enumerate() {
        if r < rates[group] {
            group = i;
        }
        if r > rates[reference] {
            reference = i;
        }
    }
    Ok(DisparateImpact {
        ratio: disparate_impact(rates[group], rates[reference])?,
        group,
        reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_effects_show_no_heterogeneity() {
        let q = cochran_q(&[(0.1, 0.02), (0.1, 0.05), (0.1, 0.01)]).unwrap();
        assert_eq!((q.q, q.df, q.p_value, q.i_squared), (0.0, 2.0, 1.0, 0.0));
        assert!(cochran_q(&[(0.1, 0.02)]).is_err());
        assert!(cochran_q(&[(0.1, 0.02), (0.2, 0.0)]).is_err());
    }

    #[test]
    fn disparate_impact_against_the_most_favored_group() {
        let d = disparate_impact_min(&[0.5, 0.8, 0.6, 0.8]).unwrap();
        assert_eq!((d.group, d.reference), (0, 1));
        assert!((d.ratio - 0.625).abs() < 1e-15);
        assert!(disparate_impact(0.3, 0.0).is_err());
        assert!(disparate_impact_min(&[0.0, 0.0]).is_err());
        assert!(disparate_impact_min(&[0.5, 1.5]).is_err());
    }
}
