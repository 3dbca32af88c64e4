//! Results JSON/CSV and the HTML result pages.
//!
//! `app()` registers [`configure`]'s routes (see `RESULTS_ROUTES` in lib.rs). The automatic
//! re-baseline on effect drift and pause on harm are not here: the domain's write step
//! (`liftlab_domain::record`) decides them and the store takes them in the outcome's batch.
//! The report itself is [`liftlab_domain::report::build`]: this module only gathers its inputs
//! from the store (a handful of reads whose size does not grow with the number of outcomes) and
//! maps the result to JSON, CSV or a page.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use liftlab_domain::drift::DriftMonitor;
use liftlab_domain::lifecycle::Change;
use liftlab_domain::report::{self, ArmTally, EpochInfo, PeriodCount, Report, ReportInput};
use liftlab_domain::{
    AggKey, AllocationPeriod, ExperimentVersion, MetricAggregate, Status, Transition,
};
use liftlab_store::{Store, StoreError};
use serde::Deserialize;

use crate::auth::Viewer;
use crate::dto::experiment_key;
use crate::error::ApiError;
use crate::pages;
use crate::state::AppState;

#[cfg(test)]
mod tests;

/// Registers `GET /v1/experiments/{key}/results`, the pages `GET /` and
/// `GET /experiments/{key}`, and signing in to them (`GET|POST /signin`, `POST /signout`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/experiments/{key}/results").route(web::get().to(results)))
        .service(web::resource("/").route(web::get().to(pages::index)))
        .service(web::resource("/experiments/{key}").route(web::get().to(pages::experiment)))
        .service(
            web::resource("/signin")
                .route(web::get().to(pages::signin_form))
                .route(web::post().to(pages::sign_in)),
        )
        .service(web::resource("/signout").route(web::post().to(pages::sign_out)));
}

/// The results formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The results JSON of DESIGN.md.
    #[default]
    Json,
    /// One row per metric × treatment comparison.
    Csv,
}

impl Format {
    /// The format an `Accept` header asks for: CSV when it ranks `text/csv` above
    /// `application/json` (by q-value, then by order), else JSON, the default for `*/*`, for
    /// anything else and for no header at all.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Json;
        };
        let mut best: Option<(f64, Format)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let format = match media.as_str() {
                "text/csv" => Format::Csv,
                "application/json" => Format::Json,
                _ => continue,
            };
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").map(str::trim))
                .find_map(|q| q.parse::<f64>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(1.0);
            if q > 0.0 && !matches!(best, Some((top, _)) if q <= top) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Json, |(_, format)| format)
    }
}

/// `?format=json|csv&epoch=N`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    /// The response format; when absent, the `Accept` header chooses (JSON by default).
    pub format: Option<Format>,
    /// The analysis epoch; the current one by default.
    pub epoch: Option<u64>,
}

/// Everything the report of one epoch needs, read from the store.
pub struct Gathered {
    /// The current version of the experiment.
    pub version: ExperimentVersion,
    /// The epoch reported on.
    pub epoch: u64,
    /// All epochs.
    pub epochs: Vec<EpochInfo>,
    aggregates: Vec<(AggKey, MetricAggregate)>,
    tallies: Vec<ArmTally>,
    assignments: Vec<PeriodCount>,
    periods: Vec<AllocationPeriod>,
    drift: Option<DriftMonitor>,
    pause_reason: Option<String>,
}

impl Gathered {
    /// Assembles the report.
    pub fn report(&self) -> Report {
        report::build(&ReportInput {
            version: &self.version,
            epoch: self.epoch,
            aggregates: &self.aggregates,
            tallies: &self.tallies,
            assignments: &self.assignments,
            periods: &self.periods,
            epochs: &self.epochs,
            drift: self.drift.as_ref(),
            pause_reason: self.pause_reason.as_deref(),
        })
    }
}

/// Why the experiment is paused: the reason of the version that paused it, if it gave one.
fn pause_reason(
    store: &dyn Store,
    version: &ExperimentVersion,
) -> Result<Option<String>, StoreError> {
    if version.status != Status::Paused {
        return Ok(None);
    }
    let versions = store.versions(&version.key)?;
    Ok(versions
        .iter()
        .rev()
        .find(|v| v.change == Change::Status(Transition::Pause))
        .and_then(|v| v.reason.clone()))
}

/// Reads the inputs of `key`'s report for `epoch` (the current epoch when `None`).
///
/// An unknown experiment or epoch is [`ApiError::NotFound`].
pub fn gather(store: &dyn Store, key: &str, epoch: Option<u64>) -> Result<Gathered, ApiError> {
    let version = store.experiment(key)?;
    let epochs: Vec<EpochInfo> = store
        .epochs(key)?
        .into_iter()
        .map(|e| EpochInfo {
            epoch: e.epoch,
            reason: e.reason,
            started_at: e.started_at,
            version: e.version,
        })
        .collect();
    let current = epochs.last().map_or(0, |e| e.epoch);
    let epoch = match epoch {
        None => current,
        Some(e) if epochs.iter().any(|x| x.epoch == e) => e,
        Some(e) => {
            return Err(ApiError::NotFound(format!(
                "experiment {key} has no epoch {e} (epochs 0 to {current})"
            )))
        }
    };
    let tallies = store
        .arm_counters(key, epoch)?
        .into_iter()
        .map(|c| ArmTally {
            arm: c.arm,
            units: c.units,
            outcomes: c.outcomes,
            handled_by: c.handled_by,
        })
        .collect();
    let assignments = store
        .assignment_counts(key, epoch)?
        .into_iter()
        .map(|c| PeriodCount {
            period: c.period,
            arm: c.arm,
            count: c.count,
        })
        .collect();
    Ok(Gathered {
        pause_reason: pause_reason(store, &version)?,
        aggregates: store.aggregates(key, epoch)?,
        periods: store.periods(key)?,
        drift: store.drift_monitor(key, epoch)?,
        version,
        epoch,
        epochs,
        tallies,
        assignments,
    })
}

/// `GET /v1/experiments/{key}/results`: the results JSON (`?format=csv` or `Accept: text/csv`
/// for CSV, `?format=` winning over `Accept`; `?epoch=N` for an older epoch).
pub async fn results(
    _who: Viewer,
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
    query: web::Query<ResultsQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = experiment_key(key.into_inner())?;
    let format = query.format.unwrap_or_else(|| {
        let accept = req.headers().get(header::ACCEPT);
        Format::from_accept(accept.and_then(|v| v.to_str().ok()))
    });
    let store = state.store.clone();
    let epoch = query.epoch;
    let gathered = web::block(move || gather(store.as_ref(), &key, epoch)).await??;
    let report = gathered.report();
    Ok(match format {
        Format::Json => HttpResponse::Ok().json(&report),
        Format::Csv => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}-epoch{}.csv\"",
                    report.experiment, report.epoch
                ),
            ))
            .body(report.to_csv()),
    })
}
