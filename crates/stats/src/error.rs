//! The one error type of liftlab-stats: why a statistic could not be computed.

/// Why a statistic could not be computed from the given inputs.
///
/// Every public function either returns finite numbers (or a documented
/// infinite bound, such as the open end of a one-sided interval) or one of
/// these variants; none of them returns NaN.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// A sample is too small for the statistic (for example n < 2 for a variance).
    #[error("{what} needs at least {needed} observations, got {got}")]
    TooFewObservations {
        /// What was being computed.
        what: &'static str,
        /// The smallest sample size that works.
        needed: f64,
        /// The sample size that was given.
        got: f64,
    },
    /// The standard error is zero, so no test statistic exists.
    #[error("{0} has zero variance")]
    ZeroVariance(&'static str),
    /// The baseline mean is zero, so a relative lift is undefined.
    #[error("the baseline mean is zero, so a relative effect is undefined")]
    ZeroBaseline,
    /// A parameter or input value is outside its domain.
    #[error("{name} must be {expected}, got {value}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// The offending value.
        value: f64,
        /// A description of the valid domain.
        expected: &'static str,
    },
    /// A collection that must be non-empty (or have enough entries) was not.
    #[error("{what} needs at least {needed} entries, got {got}")]
    TooFewEntries {
        /// What was being computed.
        what: &'static str,
        /// The smallest number of entries that works.
        needed: usize,
        /// The number of entries that was given.
        got: usize,
    },
    /// Two slices that must have the same length did not.
    #[error("{what}: lengths differ ({left} and {right})")]
    LengthMismatch {
        /// What was being computed.
        what: &'static str,
        /// The first length.
        left: usize,
        /// The second length.
        right: usize,
    },
    /// `remove` was called on an empty accumulator.
    #[error("cannot remove a value from an empty accumulator")]
    RemoveFromEmpty,
    /// A search (power, minimum detectable effect) has no solution for these inputs.
    #[error("no solution: {0}")]
    NoSolution(&'static str),
}

/// Checks that `value` is finite.
pub(crate) fn finite(name: &'static str, value: f64) -> Result<f64, StatsError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(StatsError::InvalidParameter {
            name,
            value,
            expected: "finite",
        })
    }
}

/// Checks that `alpha` lies strictly between 0 and 1.
pub(crate) fn check_alpha(alpha: f64) -> Result<f64, StatsError> {
    if 0.0 < alpha && alpha < 1.0 {
        Ok(alpha)
    } else {
        Err(StatsError::InvalidParameter {
            name: "alpha",
            value: alpha,
            expected: "in (0, 1)",
        })
    }
}

/// Checks that `value` is finite and strictly positive.
pub(crate) fn positive(name: &'static str, value: f64) -> Result<f64, StatsError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(StatsError::InvalidParameter {
            name,
            value,
            expected: "finite and > 0",
        })
    }
}
