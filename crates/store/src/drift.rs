//! Drift monitors: one per (experiment, epoch), updated inside the same atomic step as the outcome.
//!
//! INTEGRATION POINT: liftlab-domain's `drift::DriftMonitor` is not published yet. Until it
//! is, this placeholder keeps the call site in `ops::record_outcome` and the `drift` table in
//! place; `observe` records nothing and `monitor` answers `None`.

use liftlab_domain::{ExperimentSpec, Outcome};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::kv::{Scan, Tx};

/// Placeholder for `liftlab_domain::drift::DriftMonitor` (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftMonitor {}

pub(crate) fn observe(_tx: &mut Tx<'_>, _spec: &ExperimentSpec, _outcome: &Outcome) -> Result<()> {
    Ok(())
}

pub(crate) fn monitor(src: &dyn Scan, exp: &str, _epoch: u64) -> Result<Option<DriftMonitor>> {
    crate::ops::require_experiment(src, exp)?;
    Ok(None)
}
