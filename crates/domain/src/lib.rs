//! liftlab-domain: experiment specs, assignment policies, outcome folding and report assembly; no IO.
//!
//! Time comes in as [`model::Millis`] arguments and randomness as seeded generators, so every
//! function here is deterministic and testable without a clock, a disk or a network.

pub mod model;

pub use model::*;
