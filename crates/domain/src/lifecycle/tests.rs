//! Tests of the lifecycle module.
