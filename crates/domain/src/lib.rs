//! liftlab-domain: experiment specs, assignment policies, outcome folding and report assembly; no IO.
