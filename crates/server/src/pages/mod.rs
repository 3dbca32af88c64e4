//! The HTML pages for people: the experiment list and one experiment's result page (maud, no JavaScript).
//!
//! Handlers gather from the store and hand plain data to the `render_*` functions, which are
//! pure so that snapshot tests can pin their output. Markup is auto-escaped by maud; charts are
//! SVG written by the templates ([`charts`]); colours come from the Okabe–Ito palette, every
//! colour has a shape or a word beside it, and the stylesheet has print rules.

mod charts;
mod experiment;
mod index;
mod signin;

#[cfg(test)]
mod tests;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use liftlab_domain::report::{timeline, TimelinePoint};
use liftlab_domain::ExperimentVersion;
use liftlab_store::Store;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;

use crate::auth::PageViewer;
use crate::dto::experiment_key;
use crate::error::ApiError;
use crate::results::gather;
use crate::state::AppState;

pub use experiment::{render_experiment, EpochEffect, ExperimentPage};
pub use index::{render_index, IndexRow};
pub use signin::{form as signin_form, render_signin, sign_in, sign_out, SignInView};

/// The most versions listed in a page's change history (the newest ones).
pub const MAX_VERSIONS_SHOWN: usize = 50;

/// The most epochs "Effect by epoch" shows (the newest), each one report of that epoch.
pub const MAX_EPOCHS_SHOWN: usize = 12;

/// The page stylesheet: readable on screen and in print.
const CSS: &str = r#"
:root { --ink: #1b1b1b; --muted: #595959; --line: #d0d0d0; --better: #009E73; --worse: #D55E00; --neutral: #0072B2; --warn-bg: #fff4e5; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); margin: 0 auto; max-width: 1100px; padding: 24px; }
header.top { display: flex; justify-content: space-between; align-items: baseline; border-bottom: 2px solid var(--ink); margin-bottom: 16px; }
header.top a { color: var(--ink); text-decoration: none; font-weight: 700; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.meta { color: var(--muted); margin: 0 0 12px; }
.verdict { font-size: 21px; font-weight: 600; margin: 12px 0 16px; padding: 12px 16px; border-left: 6px solid var(--neutral); background: #f3f7fb; }
.warnings { border: 2px solid var(--worse); background: var(--warn-bg); padding: 8px 16px; margin: 12px 0; }
.warnings li { margin: 4px 0; }
.warnings .paused, .warnings .harm { font-weight: 700; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 13px; text-transform: uppercase; letter-spacing: .03em; color: var(--muted); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 13px; border: 1px solid currentColor; }
.status-running { color: var(--better); } .status-paused { color: var(--worse); } .status-stopped, .status-draft { color: var(--muted); }
.v-better { color: var(--better); font-weight: 600; } .v-worse { color: var(--worse); font-weight: 600; } .v-inconclusive { color: var(--muted); }
.flag { color: var(--worse); font-weight: 700; }
.ok { color: var(--better); }
figure { margin: 8px 0 16px; } figcaption { color: var(--muted); font-size: 13px; }
svg { max-width: 100%; height: auto; font-family: inherit; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); padding: 10px 12px; }
.card .big { font-size: 22px; font-weight: 700; }
footer { margin-top: 32px; color: var(--muted); font-size: 13px; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  header.top a { text-decoration: none; }
  h2 { break-after: avoid; } table, figure, .card { break-inside: avoid; }
  .verdict { background: none; border: 2px solid var(--ink); }
  a { color: var(--ink); }
}
"#;

/// The common page frame.
pub(crate) fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · liftlab" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header.top {
                    a href="/" { "liftlab" }
                    span.meta { "experiment results" }
                }
                main { (body) }
                footer {
                    "Numbers: each verdict follows its decision, a delta-method relative lift with an always-valid (or, when the spec plans a fixed horizon, a t) interval, corrected across primary and secondary metrics; guardrails are one-sided harm tests; chance to win is a Gaussian model on the relative lift. "
                    "JSON and CSV at /v1/experiments/{key}/results."
                }
            }
        }
    }
}

/// A page for `who`: a browser signed in with a session cookie gets a sign-out button in the
/// page header (the render functions stay pure, so it is added to their output here).
fn html_response(markup: Markup, who: &PageViewer) -> HttpResponse {
    let mut html = markup.into_string();
    if who.signed_in {
        let form = signin::signout_form(Some(&who.principal.name)).into_string();
        if let Some(at) = html.find("</header>") {
            html.insert_str(at, &form);
        }
    }
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .body(html)
}

/// `?epoch=N` on the experiment page.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// The analysis epoch; the current one by default.
    pub epoch: Option<u64>,
}

/// `GET /`: every experiment with its status, primary lift and verdict.
pub async fn index(who: PageViewer, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let rows = web::block(move || index_rows(store.as_ref())).await??;
    Ok(html_response(render_index(&rows), &who))
}

fn index_rows(store: &dyn Store) -> Result<Vec<IndexRow>, ApiError> {
    let mut rows = Vec::new();
    for version in store.experiments()? {
        let gathered = gather(store, &version.key, None)?;
        let report = gathered.report();
        rows.push(IndexRow {
            last_data: report.timeline.last().map(|p| p.date.clone()),
            updated_at: version.created_at,
            report,
            version,
        });
    }
    Ok(rows)
}

/// `GET /experiments/{key}`: the result page (`?epoch=N` for an older epoch).
pub async fn experiment(
    who: PageViewer,
    state: web::Data<AppState>,
    key: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = experiment_key(key.into_inner())?;
    let store = state.store.clone();
    let epoch = query.epoch;
    let page = web::block(move || experiment_page(store.as_ref(), &key, epoch)).await??;
    Ok(html_response(render_experiment(&page), &who))
}

fn experiment_page(
    store: &dyn Store,
    key: &str,
    epoch: Option<u64>,
) -> Result<ExperimentPage, ApiError> {
    let gathered = gather(store, key, epoch)?;
    let report = gathered.report();
    // The primary metric over every epoch, so the chart shows the boundaries.
    // And each arm's model-version changes, from the first-seen times the epochs' drift
    // monitors keep (no rescan of events).
    let mut history: Vec<TimelinePoint> = Vec::new();
    let mut model_changes: Vec<charts::ModelMarker> = Vec::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    for e in &gathered.epochs {
        let aggregates = store.aggregates(key, e.epoch)?;
        history.extend(timeline(&gathered.version.spec, e.epoch, &aggregates));
        let Some(monitor) = store.drift_monitor(key, e.epoch)? else {
            continue;
        };
        let mut firsts = monitor.model_versions().to_vec();
        firsts.sort_by_key(|m| m.first_seen);
        for m in firsts {
            let pair = (m.arm.clone(), m.model_version.clone());
            if seen.contains(&pair) {
                continue;
            }
            if seen.iter().any(|(arm, _)| *arm == m.arm) {
                model_changes.push(charts::ModelMarker {
                    arm: m.arm,
                    model_version: m.model_version,
                    at_ms: m.first_seen,
                });
            }
            seen.push(pair);
        }
    }
    // The primary metric's decision in each of the newest epochs, from each epoch's report
    // (a handful of reads per epoch, none growing with the outcomes).
    let mut epoch_effects = Vec::new();
    let skip = gathered.epochs.len().saturating_sub(MAX_EPOCHS_SHOWN);
    for e in gathered.epochs.iter().skip(skip) {
        let other;
        let epoch_report = if e.epoch == gathered.epoch {
            &report
        } else {
            other = gather(store, key, Some(e.epoch))?.report();
            &other
        };
        let primary = epoch_report
            .metrics
            .iter()
            .find(|m| m.role == liftlab_domain::spec::MetricRole::Primary);
        for c in primary.iter().flat_map(|m| m.comparisons.iter()) {
            epoch_effects.push(EpochEffect {
                epoch: e.epoch,
                started_at: liftlab_domain::report::format_ts(e.started_at),
                reason: e.reason.clone(),
                arm: c.arm.clone(),
                decision: c
                    .decision
                    .as_ref()
                    .map(|d| (d.estimate, d.ci_low, d.ci_high)),
                verdict: c.verdict,
            });
        }
    }
    let mut versions: Vec<ExperimentVersion> = store.versions(key)?;
    let skip = versions.len().saturating_sub(MAX_VERSIONS_SHOWN);
    versions.drain(..skip);
    versions.reverse();
    Ok(ExperimentPage {
        version: gathered.version,
        report,
        history,
        versions,
        epoch_effects,
        model_changes,
    })
}
