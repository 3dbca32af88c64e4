//! Tests of the fold module.
