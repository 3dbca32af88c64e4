//! liftlab's test kit: spec builders, deterministic test data, a fluent in-process client, the harness that runs the real binary, and a private PostgreSQL.
//!
//! The kit depends on no liftlab crate. The in-process client takes any actix service
//! (`TestApp::new(liftlab_server::app(state)).await`), keys are plain strings, and the process
//! harness takes the path of the binary (`Liftlab::at(env!("CARGO_BIN_EXE_liftlab"))`), so
//! `liftlab-server`'s own tests use the kit without a second copy of the server in the build.
//! [`postgres::fresh_database`] gives a test a new database on a cluster private to its process.

pub mod client;
pub mod postgres;
pub mod process;
pub mod random;
pub mod spec;

pub use client::{Body, Call, Reply, Role, TestApp};
pub use process::{Liftlab, Server};
pub use random::unit_random;
