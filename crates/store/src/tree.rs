//! The store's tables: one sled tree per entity, with the layout of each key.

/// One table of the store. Every implementation keeps exactly these, under these names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TreeId {
    /// `key` → the current [`liftlab_domain::ExperimentVersion`].
    Experiments,
    /// `key` → `ExpState` (current version, epoch and period numbers).
    State,
    /// `(key, version)` → every [`liftlab_domain::ExperimentVersion`], kept forever.
    Versions,
    /// `(key, epoch)` → [`crate::Epoch`].
    Epochs,
    /// `(key, period)` → [`liftlab_domain::AllocationPeriod`].
    Periods,
    /// `(key, unit_id)` → [`liftlab_domain::Assignment`]. `SledStore` keeps this table in
    /// append-only chunks with an index in memory ([`crate::chunks`]); its sled tree of this
    /// name is only read to upgrade a directory of schema 2 or 3.
    Assignments,
    /// `(key, task_id)` → the unit id the task belongs to.
    Tasks,
    /// `(key, epoch, period, arm)` → number of units assigned into the experiment.
    AssignmentCounts,
    /// `(key, epoch, unit_id)` → [`liftlab_domain::UnitRow`].
    Units,
    /// `(key, epoch, arm, metric, scope)` → [`liftlab_domain::MetricAggregate`].
    Aggregates,
    /// `(key, epoch, arm)` → [`crate::ArmCounters`].
    Counters,
    /// `(key, event_id)` → the outcome's log sequence number (the idempotency keys).
    Events,
    /// `(key, first seq)` → the outcomes one batch recorded: the append-only outcome log.
    Outcomes,
    /// `key` → the experiment's bandit state.
    Bandits,
    /// `(key, epoch)` → the drift monitor of that epoch.
    Drift,
    /// `first seq` → the audit records (`StoredAudit`) one batch appended: the hash chain.
    Audit,
    /// `(key, first seq)` → the sequence numbers of the experiment's records in one batch.
    AuditIndex,
    /// Named counters and the audit chain's head.
    Meta,
}

impl TreeId {
    /// Every table, in a fixed order.
    pub(crate) const ALL: [TreeId; 18] = [
        TreeId::Experiments,
        TreeId::State,
        TreeId::Versions,
        TreeId::Epochs,
        TreeId::Periods,
        TreeId::Assignments,
        TreeId::Tasks,
        TreeId::AssignmentCounts,
        TreeId::Units,
        TreeId::Aggregates,
        TreeId::Counters,
        TreeId::Events,
        TreeId::Outcomes,
        TreeId::Bandits,
        TreeId::Drift,
        TreeId::Audit,
        TreeId::AuditIndex,
        TreeId::Meta,
    ];

    /// The table's name (the sled tree name).
    pub(crate) fn name(self) -> &'static str {
        match self {
            TreeId::Experiments => "experiments",
            TreeId::State => "state",
            TreeId::Versions => "versions",
            TreeId::Epochs => "epochs",
            TreeId::Periods => "periods",
            TreeId::Assignments => "assignments",
            TreeId::Tasks => "tasks",
            TreeId::AssignmentCounts => "assignment_counts",
            TreeId::Units => "units",
            TreeId::Aggregates => "aggregates",
            TreeId::Counters => "counters",
            TreeId::Events => "events",
            TreeId::Outcomes => "outcomes",
            TreeId::Bandits => "bandits",
            TreeId::Drift => "drift",
            TreeId::Audit => "audit",
            TreeId::AuditIndex => "audit_index",
            TreeId::Meta => "meta",
        }
    }

    /// Whether the table's records are written in postcard (else JSON); see `codec`.
    ///
    /// Binary tables hold the records written on every assignment and outcome; their types
    /// must not use serde attributes that need a self-describing format (a test in `codec`
    /// round-trips each of them).
    pub(crate) fn binary(self) -> bool {
        !matches!(
            self,
            TreeId::Experiments
                | TreeId::Versions
                | TreeId::Epochs
                | TreeId::Periods
                | TreeId::Bandits
                | TreeId::Drift
        )
    }

    /// The table's position in [`TreeId::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_table_once_in_index_order() {
        for (i, t) in TreeId::ALL.iter().enumerate() {
            assert_eq!(t.index(), i, "{}", t.name());
        }
        let mut names: Vec<&str> = TreeId::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TreeId::ALL.len());
    }
}
