//! Tests of the assign module.
