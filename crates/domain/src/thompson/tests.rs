//! Tests of the thompson module.
