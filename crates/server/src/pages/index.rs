//! The experiment list at `GET /`: status, arms, the primary metric's lift with its interval, the verdict and the last update.

use liftlab_domain::report::text::{before_data, level, signed_percent};
use liftlab_domain::report::{Report, Verdict};
use liftlab_domain::{ExperimentVersion, Millis};
use maud::{html, Markup};

use super::experiment::{status_badge, verdict_class};
use super::layout;
use crate::dto::rfc3339;

/// One experiment on the list.
pub struct IndexRow {
    /// Its current version.
    pub version: ExperimentVersion,
    /// The report of its current epoch.
    pub report: Report,
    /// When the current version was made.
    pub updated_at: Millis,
    /// The last day with data for the primary metric (YYYY-MM-DD).
    pub last_data: Option<String>,
}

/// The primary metric's lift for the featured arm, as a table cell.
fn primary_lift(row: &IndexRow) -> Markup {
    let spec = &row.version.spec;
    let primary = spec.primary().key();
    let comparison = row
        .report
        .metrics
        .iter()
        .find(|m| m.key == primary)
        .and_then(|m| {
            m.comparisons
                .iter()
                .find(|c| Some(&c.arm) == row.report.featured_arm.as_ref())
        });
    html! {
        div { (primary) }
        @match comparison.and_then(|c| c.decision.filter(|_| c.verdict != Verdict::Collecting).map(|d| (c, d))) {
            Some((c, d)) => {
                div class=(verdict_class(c.verdict)) {
                    (signed_percent(d.estimate)) " "
                    small { "(" (d.method.interval_name()) " " (level(1.0 - d.interval_level)) "% interval " (signed_percent(d.ci_low)) " to " (signed_percent(d.ci_high)) ")" }
                }
            }
            None => {
                div.meta {
                    @match (before_data(&row.report), comparison) {
                        (Some(words), _) => { (words) }
                        (None, Some(c)) if c.verdict == Verdict::Collecting => { "collecting (" (c.evidence.shortfall()) ")" }
                        (None, _) => { "not enough data" }
                    }
                }
            }
        }
    }
}

/// Renders the list page.
pub fn render_index(rows: &[IndexRow]) -> Markup {
    let body = html! {
        h1 { "Experiments" }
        @if rows.is_empty() {
            p.meta { "No experiments yet. Define one with POST /v1/experiments or `liftlab apply`." }
        } @else {
            table {
                thead {
                    tr {
                        th { "Experiment" }
                        th { "Status" }
                        th { "Arms" }
                        th { "Primary lift" }
                        th { "Verdict" }
                        th { "Last update" }
                    }
                }
                tbody {
                    @for row in rows {
                        tr {
                            td {
                                a href={ "/experiments/" (row.version.key) } { (row.version.spec.name()) }
                                div.meta { (row.version.key) " · v" (row.version.version) " · epoch " (row.report.epoch) }
                            }
                            td { (status_badge(row.version.status)) }
                            td {
                                @for arm in row.version.spec.arms() {
                                    div { (arm.key()) @if arm.is_baseline() { small.meta { " (baseline)" } } }
                                }
                            }
                            td { (primary_lift(row)) }
                            td {
                                (row.report.verdict)
                                @if !row.report.warnings.is_empty() {
                                    div.flag { (row.report.warnings.len()) " warning" @if row.report.warnings.len() != 1 { "s" } }
                                }
                            }
                            td {
                                div { "changed " (rfc3339(row.updated_at)) }
                                @if let Some(day) = &row.last_data { div.meta { "data to " (day) } }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("Experiments", body)
}
