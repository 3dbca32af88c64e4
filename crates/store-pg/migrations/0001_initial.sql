-- liftlab's PostgreSQL schema, version 1. Every table is keyed by experiment first, so Citus
-- can distribute each one by `experiment` (every unique key includes it); `audit_head` (one
-- row) and `schema_migrations` are small reference tables.
--
-- Values are the domain's records as JSON text (serde, floats round-tripped exactly).

-- The experiment row: its state (version, epoch, period, status, arm keys) and current
-- version. Writers lock it: FOR SHARE to assign or record outcomes, FOR UPDATE to change the
-- experiment or open an allocation period.
CREATE TABLE experiments (
    experiment text PRIMARY KEY,
    state text NOT NULL,
    current text NOT NULL
);

CREATE TABLE versions (
    experiment text NOT NULL,
    version bigint NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (experiment, version)
);

CREATE TABLE epochs (
    experiment text NOT NULL,
    epoch bigint NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (experiment, epoch)
);

CREATE TABLE periods (
    experiment text NOT NULL,
    period bigint NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (experiment, period)
);

CREATE TABLE bandits (
    experiment text PRIMARY KEY,
    body text NOT NULL
);

CREATE TABLE drift (
    experiment text NOT NULL,
    epoch bigint NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (experiment, epoch)
);

-- First write wins: INSERT ... ON CONFLICT DO NOTHING, then read back.
CREATE TABLE assignments (
    experiment text NOT NULL,
    unit_id text NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (experiment, unit_id)
);

-- Task id -> unit, for task ids other than the unit's own.
CREATE TABLE tasks (
    experiment text NOT NULL,
    task_id text NOT NULL,
    unit_id text NOT NULL,
    PRIMARY KEY (experiment, task_id)
);

CREATE TABLE units (
    experiment text NOT NULL,
    epoch bigint NOT NULL,
    unit_id text NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (experiment, epoch, unit_id)
);

-- The idempotency set of outcomes: per (experiment, unit, event id), since a retry carries its
-- task and so resolves to the same unit (the sled store keys it the same way).
CREATE TABLE events (
    experiment text NOT NULL,
    unit_id text NOT NULL,
    event_id text NOT NULL,
    PRIMARY KEY (experiment, unit_id, event_id)
);

-- The outcome log, in the order outcomes were recorded.
CREATE TABLE outcomes (
    experiment text NOT NULL,
    seq bigserial,
    body text NOT NULL,
    PRIMARY KEY (experiment, seq)
);

-- Aggregates: a compacted base per key, plus one row of changes per key per write batch
-- (the AggDeltas `(old, new, propensity)` of the batch, applied in `id` order).
CREATE TABLE aggregates (
    experiment text NOT NULL,
    epoch bigint NOT NULL,
    key text NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (experiment, epoch, key)
);

CREATE TABLE aggregate_deltas (
    experiment text NOT NULL,
    id bigserial,
    epoch bigint NOT NULL,
    key text NOT NULL,
    changes text NOT NULL,
    PRIMARY KEY (experiment, id)
);

-- Per-arm counters: sums, so base and deltas add up in any order.
CREATE TABLE counters (
    experiment text NOT NULL,
    epoch bigint NOT NULL,
    arm text NOT NULL,
    units bigint NOT NULL,
    outcomes bigint NOT NULL,
    handled_by text NOT NULL,
    PRIMARY KEY (experiment, epoch, arm)
);

CREATE TABLE counter_deltas (
    experiment text NOT NULL,
    id bigserial,
    epoch bigint NOT NULL,
    arm text NOT NULL,
    units bigint NOT NULL,
    outcomes bigint NOT NULL,
    handled_by text NOT NULL,
    PRIMARY KEY (experiment, id)
);

CREATE TABLE assignment_counts (
    experiment text NOT NULL,
    epoch bigint NOT NULL,
    period bigint NOT NULL,
    arm text NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (experiment, epoch, period, arm)
);

CREATE TABLE assignment_count_deltas (
    experiment text NOT NULL,
    id bigserial,
    epoch bigint NOT NULL,
    period bigint NOT NULL,
    arm text NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (experiment, id)
);

-- One row per experiment that a compactor holds (FOR UPDATE SKIP LOCKED) while it folds.
CREATE TABLE compactions (
    experiment text PRIMARY KEY
);

-- The audit chain: one chain over every experiment, serialised by the head row.
CREATE TABLE audit (
    experiment text NOT NULL,
    seq bigint NOT NULL,
    prev_hash bytea NOT NULL,
    kind text NOT NULL,
    payload text NOT NULL,
    ts bigint NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (experiment, seq)
);
CREATE INDEX audit_by_seq ON audit (seq);

CREATE TABLE audit_head (
    id int PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    hash bytea NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));
