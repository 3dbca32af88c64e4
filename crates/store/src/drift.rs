//! Drift monitors: one per (experiment, epoch), stepped by the domain inside the outcome's atomic step.

pub use liftlab_domain::drift::DriftMonitor;

use crate::error::Result;
use crate::kv::{get_as, Scan};
use crate::ops::keys;
use crate::tree::TreeId;

/// The stored drift monitor of an epoch.
pub(crate) fn monitor(src: &dyn Scan, exp: &str, epoch: u64) -> Result<Option<DriftMonitor>> {
    crate::ops::require_experiment(src, exp)?;
    get_as(src.as_source(), TreeId::Drift, &keys::exp_n(exp, epoch))
}
