//! Tests of the hash module.
