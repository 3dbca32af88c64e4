//! Results JSON/CSV and the HTML result pages; owned by the results engineer.
//!
//! `app()` registers [`configure`]'s routes (see `RESULTS_ROUTES` in lib.rs) and the outcomes
//! handler calls [`after_outcomes`] after every batch that accepted events for an experiment.

use actix_web::web;

use crate::AppState;

/// Registers `GET /v1/experiments/{key}/results`, `GET /` and `GET /experiments/{key}`.
pub fn configure(_cfg: &mut web::ServiceConfig) {}

/// Runs after a batch of outcomes for `experiment` was recorded (drift and harm checks).
pub fn after_outcomes(_state: &AppState, _experiment: &str) {}
