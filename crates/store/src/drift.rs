//! Drift monitors: one per (experiment, epoch), updated inside the same atomic step as the outcome.

pub use liftlab_domain::drift::DriftMonitor;
use liftlab_domain::{ExperimentSpec, Outcome};

use crate::error::Result;
use crate::kv::{get_as, Scan, Tx};
use crate::ops::keys;
use crate::tree::TreeId;

/// Feeds the outcome to the drift monitor of its (experiment, epoch), when the spec monitors
/// drift or the outcome names a model version (the monitor keeps each arm's first-seen time
/// per model version, for the over-time chart).
///
/// The monitor's detections are not acted on here: results read the stored monitor, and
/// re-baselining stays an explicit call.
pub(crate) fn observe(tx: &mut Tx<'_>, spec: &ExperimentSpec, outcome: &Outcome) -> Result<()> {
    if spec.drift().is_none() && outcome.model_version.is_none() {
        return Ok(());
    }
    let key = keys::exp_n(spec.key(), outcome.epoch);
    let mut monitor = tx
        .get_as::<DriftMonitor>(TreeId::Drift, &key)?
        .unwrap_or_default();
    // Detections are recorded inside the monitor itself; the returned list is informational.
    let _detections = monitor.observe(spec, outcome);
    tx.put(TreeId::Drift, key, monitor);
    Ok(())
}

/// The stored drift monitor of an epoch.
pub(crate) fn monitor(src: &dyn Scan, exp: &str, epoch: u64) -> Result<Option<DriftMonitor>> {
    crate::ops::require_experiment(src, exp)?;
    get_as(src.as_source(), TreeId::Drift, &keys::exp_n(exp, epoch))
}
