//! liftlab-lab: the traffic simulator, the scenario format and the Monte-Carlo calibration, used by
//! `liftlab simulate`, `liftlab demo` and `liftlab calibrate`.
//!
//! The lab is a client of the library crates like any other: the simulator drives a server
//! (one it starts in-process on a temporary data directory, [`local::LocalServer`], or a remote
//! one) over the HTTP API through [`client::Client`], and the calibration runs
//! liftlab-stats and liftlab-domain in process against a known truth.

pub mod calibrate;
pub mod client;
pub mod intervals;
pub mod local;
pub mod progress;
pub mod scenario;
pub mod simulate;
