//! Tests of report assembly.
