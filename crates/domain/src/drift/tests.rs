//! Tests of the drift monitor.
