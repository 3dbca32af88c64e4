//! One experiment's result page: verdict, KPI table, forest plot, trend with drift and epochs, allocation, health, ROI, segments and provenance.

use liftlab_domain::lifecycle::Change;
use liftlab_domain::report::text::{
    before_data, humanize, level, money, number, p_is, p_value, percent, power_note, signed_percent,
};
use liftlab_domain::report::{
    ComparisonResult, DecisionMethod, DecisionTest, Interval, MetricResult, Report, SavingsBasis,
    TimelinePoint, Verdict, WarningKind, MIN_EACH_WAY, MIN_UNITS_PER_ARM,
};
use liftlab_domain::spec::{Correction, MetricRole};
use liftlab_domain::{ExperimentVersion, Status};
use maud::{html, Markup};

use super::charts::{self, ForestRow};
use super::layout;
use crate::dto::rfc3339;

/// What the experiment page shows.
pub struct ExperimentPage {
    /// The current version (spec, status, hypothesis, owner).
    pub version: ExperimentVersion,
    /// The report of the epoch shown.
    pub report: Report,
    /// The primary metric per arm and day over every epoch.
    pub history: Vec<TimelinePoint>,
    /// The newest versions, newest first.
    pub versions: Vec<ExperimentVersion>,
    /// The primary metric's decision per treatment in each of the newest epochs, oldest first
    /// (shown when there is more than one epoch).
    pub epoch_effects: Vec<EpochEffect>,
    /// Each time an arm's outcomes named a model version new to the arm, over every epoch.
    pub model_changes: Vec<charts::ModelMarker>,
}

/// One row of "Effect by epoch": an epoch's decision on the primary metric for one treatment.
pub struct EpochEffect {
    /// The epoch.
    pub epoch: u64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Why it started.
    pub reason: String,
    /// The treatment arm.
    pub arm: String,
    /// The decision's relative lift with its interval, once there is one.
    pub decision: Option<(f64, f64, f64)>,
    /// better | worse | inconclusive | collecting.
    pub verdict: Verdict,
}

/// The text with its first letter in upper case.
fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The CSS class of a verdict.
pub fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Better => "v-better",
        Verdict::Worse => "v-worse",
        Verdict::Inconclusive => "v-inconclusive",
        Verdict::Collecting => "v-collecting",
    }
}

/// A status as a badge (text and colour).
pub fn status_badge(s: Status) -> Markup {
    html! { span class={ "badge status-" (s.as_str()) } { (s.as_str()) } }
}

fn verdict_cell(v: Verdict) -> Markup {
    let mark = match v {
        Verdict::Better => "▲ ",
        Verdict::Worse => "▼ ",
        Verdict::Inconclusive | Verdict::Collecting => "",
    };
    html! { span class=(verdict_class(v)) { (mark) (v.as_str()) } }
}

fn role_name(r: MetricRole) -> &'static str {
    match r {
        MetricRole::Primary => "primary",
        MetricRole::Guardrail => "guardrail",
        MetricRole::Secondary => "secondary",
    }
}

fn interval_pct(i: &Interval) -> String {
    format!(
        "{} to {}",
        signed_percent(i.ci_low),
        signed_percent(i.ci_high)
    )
}

fn interval_money(i: &Interval, currency: &str) -> String {
    format!(
        "{} to {}",
        money(i.ci_low, currency),
        money(i.ci_high, currency)
    )
}

fn arm_mean(m: &MetricResult, arm: &str) -> Markup {
    match m.arms.iter().find(|a| a.arm == arm) {
        Some(a) if a.n > 0 => html! {
            (number(a.mean))
            @if let Some(ipw) = a.ipw_mean { br; small.meta { "IPW " (number(ipw)) } }
            br; small.meta { "n = " (a.n) }
        },
        _ => html! { span.meta { "—" } },
    }
}

/// How the decisions were made, in one paragraph under the key results.
fn analysis_note(report: &Report) -> Markup {
    let a = &report.analysis;
    let lv = level(a.alpha);
    let correction = match a.correction {
        Correction::None => "not corrected for multiple testing",
        Correction::Holm => "corrected by Holm's method",
        Correction::Bh => "corrected by Benjamini–Hochberg",
    };
    html! {
        p.meta.analysis {
            @match a.method {
                DecisionMethod::Sequential => { "Intervals are always-valid (safe to look at any time) at " (lv) "% confidence." }
                DecisionMethod::Stratified => {
                    "Intervals are always-valid, period-stratified at " (lv) "% confidence: the allocation changed during the epoch, so each allocation period's arms are compared within that period and the periods are weighted by their share of units (every unit on an arm against every unit on the baseline, averaged over the run); pooled means are shown as diagnostics only."
                }
                DecisionMethod::Fixed => {
                    "Intervals are fixed-horizon at " (lv) "% confidence, final only at "
                    (a.planned_units.map_or("the planned".to_string(), |p| p.to_string())) " units ("
                    (a.units) " so far"
                    @if a.final_answer { ", reached" } ")."
                }
            }
            " The " (a.family_size) " comparisons of primary and secondary metrics are one family, " (correction)
            ", so their intervals widen to the level that matches the adjusted p-value. Each guardrail is a one-sided test for harm, always-valid at alpha " (number(a.alpha))
            ", not diluted by the other metrics. A comparison is collecting until each arm has " (MIN_UNITS_PER_ARM)
            " units with the metric (and " (MIN_EACH_WAY) " cases each way for a yes/no metric)."
        }
    }
}

/// The KPI table: one row per metric × treatment, each showing its decision.
fn kpi_table(report: &Report) -> Markup {
    html! {
        table {
            thead {
                tr {
                    th { "Metric" }
                    th.num { "Baseline" }
                    th { "Arm" }
                    th.num { "Arm mean" }
                    th.num { "Lift" }
                    th.num { "Interval" }
                    th.num { "p" }
                    th.num { "Chance to win" }
                    th { "Verdict" }
                }
            }
            tbody {
                @for m in &report.metrics {
                    @for cmp in &m.comparisons {
                        (kpi_row(m, cmp))
                    }
                }
            }
        }
    }
}

fn kpi_row(m: &MetricResult, cmp: &ComparisonResult) -> Markup {
    html! {
        tr {
            td { strong { (humanize(&m.key)) } br; small.meta { (role_name(m.role)) ", " (if m.direction == liftlab_domain::spec::Direction::Decrease { "lower is better" } else { "higher is better" }) } }
            td.num { (arm_mean(m, &cmp.baseline)) }
            td { (cmp.arm) }
            td.num { (arm_mean(m, &cmp.arm)) }
            @match cmp.decision.filter(|_| cmp.verdict != Verdict::Collecting) {
                Some(d) => {
                    td.num { (signed_percent(d.estimate)) }
                    td.num {
                        (interval_pct(&Interval { estimate: d.estimate, ci_low: d.ci_low, ci_high: d.ci_high }))
                        br; small.meta { (d.method.interval_name()) " " (level(1.0 - d.interval_level)) "%"
                            @if d.test == DecisionTest::Harm { ", harm test" } }
                    }
                    td.num { (p_value(d.p_value)) br; small.meta { @if d.test == DecisionTest::Harm { "one-sided" } @else { "adjusted" } } }
                }
                None => {
                    td.num { "—" }
                    td.num { "—" }
                    td.num { "—" }
                }
            }
            td.num { @match cmp.bayes { Some(b) => { (percent(b.chance_to_win)) "%" }, None => { "—" } } }
            td {
                (verdict_cell(cmp.verdict))
                @if cmp.verdict == Verdict::Collecting {
                    br; small.meta { (cmp.evidence.shortfall()) }
                } @else if let Some(note) = &cmp.note { br; small.meta { (note) } }
            }
        }
    }
}

fn forest_rows(report: &Report) -> Vec<ForestRow> {
    let many = report.arms.len() > 2;
    report
        .metrics
        .iter()
        .flat_map(|m| {
            m.comparisons.iter().filter_map(move |cmp| {
                let d = cmp
                    .decision
                    .filter(|_| cmp.verdict != Verdict::Collecting)?;
                Some(ForestRow {
                    label: if many {
                        format!("{} · {}", humanize(&m.key), cmp.arm)
                    } else {
                        humanize(&m.key)
                    },
                    estimate: d.estimate,
                    ci_low: d.ci_low,
                    ci_high: d.ci_high,
                    interval: format!(
                        "{} {}%",
                        d.method.interval_name(),
                        level(1.0 - d.interval_level)
                    ),
                    verdict: cmp.verdict,
                })
            })
        })
        .collect()
}

fn warnings(report: &Report) -> Markup {
    if report.warnings.is_empty() {
        return html! {};
    }
    html! {
        section.warnings aria-label="Warnings" {
            ul {
                @for w in &report.warnings {
                    li class=(match w.kind { WarningKind::Paused => "paused", WarningKind::Harm => "harm", _ => "" }) {
                        (w.message)
                    }
                }
            }
        }
    }
}

fn health(report: &Report) -> Markup {
    let srm = &report.srm;
    let with_outcome: u64 = report.attrition.arms.iter().map(|c| c.with_outcome).sum();
    let bad = report.guardrails.iter().filter(|g| !g.ok).count();
    let collecting = report
        .guardrails
        .iter()
        .filter(|g| g.verdict == Verdict::Collecting)
        .count();
    html! {
        h2 { "Health" }
        div.cards {
            div.card {
                div { "Sample ratio" }
                @match before_data(report) {
                    None => {
                        div class={ "big " (if srm.ok { "ok" } else { "flag" }) } { @if srm.ok { "OK" } @else { "Mismatch" } }
                        small.meta { "χ² = " (number(srm.chi2)) ", " (p_is(srm.p_value)) }
                    }
                    Some(words) => {
                        div.big { (capitalized(words)) }
                        small.meta { "nothing to judge yet" }
                    }
                }
            }
            div.card {
                div { "Outcome coverage" }
                @if with_outcome > 0 {
                    div class={ "big " (if report.attrition.ok { "ok" } else { "flag" }) } { @if report.attrition.ok { "Even" } @else { "Uneven" } }
                    small.meta { "χ² = " (number(report.attrition.chi2)) ", " (p_is(report.attrition.p_value)) }
                } @else {
                    div.big { "No outcomes" }
                    small.meta { "nothing to judge yet" }
                }
            }
            div.card {
                div { "Guardrails" }
                @if bad > 0 {
                    div.big.flag { (bad) " harmed" }
                } @else if report.guardrails.is_empty() {
                    div.big { "None" }
                } @else if collecting > 0 {
                    div.big { "Collecting" }
                } @else {
                    div.big.ok { "No harm found" }
                }
                small.meta { (report.guardrails.len()) " checked"
                    @if collecting > 0 { ", " (collecting) " still collecting" } ", one-sided harm tests" }
            }
            @if let Some(p) = &report.power {
                div.card {
                    div { "Power at " (percent(p.mde)) "% lift" }
                    div.big { @match p.achieved_power { Some(a) => { (percent(a)) "%" }, None => { "—" } } }
                    small.meta {
                        "target " (percent(p.target_power)) "%"
                        @if let Some(more) = p.more_units_needed { ", " (more) " more units needed" }
                        @if let Some(note) = &p.note { br; (note) }
                        @if let Some(why) = power_note(report) { br; (why) }
                    }
                }
            }
        }
        table {
            thead { tr { th { "Arm" } th.num { "Assigned" } th.num { "Expected share" } th.num { "With outcome" } th.num { "Coverage" } } }
            tbody {
                @for (a, cov) in report.arms.iter().zip(&report.attrition.arms) {
                    tr {
                        td { (a.key) @if a.role == liftlab_domain::spec::ArmRole::Baseline { small.meta { " (baseline)" } } }
                        td.num { (a.assigned) }
                        td.num { (format!("{:.1}%", a.expected_share * 100.0)) }
                        td.num { (cov.with_outcome) }
                        td.num { @match cov.coverage { Some(v) => { (format!("{:.1}%", v * 100.0)) }, None => { "—" } } }
                    }
                }
            }
        }
    }
}

fn roi(report: &Report) -> Markup {
    let Some(roi) = &report.roi else {
        return html! {};
    };
    let cur = roi.currency.as_str();
    html! {
        h2 { "Return on investment" }
        div.cards {
            div.card {
                div { "Net monthly savings" @if let Some(arm) = &roi.arm { " (" (arm) ")" } }
                @match (roi.net_monthly_savings, roi.monthly_savings) {
                    (Some(net), Some(gross)) => {
                        div.big { (money(net.estimate, cur)) }
                        small.meta { (interval_money(&net, cur)) br;
                            "gross " (money(gross.estimate, cur)) " − fixed " (money(roi.fixed_monthly_cost, cur))
                            " · " (number(roi.volume_per_month)) " cases a month"
                            @match roi.savings_basis { Some(SavingsBasis::CostMetric) => { " · from cost per case" }, Some(SavingsBasis::HumanTime) => { " · from human time" }, None => {} } }
                    }
                    _ => { div.big { "—" } small.meta { "needs a cost or duration metric with enough data" } }
                }
            }
            @if roi.fixed_monthly_cost > 0.0 {
                div.card {
                    div { "Break-even volume" }
                    @match roi.break_even_volume {
                        Some(v) => { div.big { (number(v)) } small.meta { "cases a month to cover " (money(roi.fixed_monthly_cost, cur)) " of fixed cost" } }
                        None => { div.big { "—" } small.meta { "a case saves nothing yet" } }
                    }
                }
            }
            @if let Some(h) = roi.hours_saved_per_month {
                div.card {
                    div { "Human hours saved a month" }
                    div.big { (number(h.estimate)) }
                    small.meta { (number(h.ci_low)) " to " (number(h.ci_high))
                        @if let Some(l) = roi.labour_savings_per_month { " · worth " (money(l.estimate, cur)) } }
                }
            }
            // Only when some outcome said AI handled it: 0% everywhere reads as a finding
            // when it only means that outcomes said human or hybrid, or nothing.
            @if roi.automation_coverage.values().any(|share| *share > 0.0) {
                @for (arm, share) in &roi.automation_coverage {
                    div.card {
                        div { "Handled by AI (" (arm) ")" }
                        div.big { (percent(*share)) "%" }
                        small.meta { "of outcomes that said who handled them" }
                    }
                }
            }
        }
        @if !roi.cost_per_case.is_empty() {
            table {
                thead { tr { th { "Arm" } th.num { "Cost per case" } th.num { "Interval" } } }
                tbody {
                    @for (arm, cost) in &roi.cost_per_case {
                        tr {
                            td { (arm) }
                            td.num { (money(*cost, cur)) " " small.meta { "(" (number(*cost)) ")" } }
                            td.num { @match roi.cost_per_case_ci.get(arm) { Some(i) => { (number(i.ci_low)) " to " (number(i.ci_high)) }, None => { "—" } } }
                        }
                    }
                }
            }
        }
        @if !report.productivity.quality_metrics.is_empty() {
            h2 { "Quality-adjusted productivity" }
            p.meta { "Completed cases weighted by the share that met quality (" (report.productivity.quality_metrics.join(", ")) ")." }
            table {
                thead { tr { th { "Arm" } th.num { "Completed" } th.num { "Met quality" } th.num { "Quality-adjusted cases" } th.num { "Per handling hour" } } }
                tbody {
                    @for p in &report.productivity.arms {
                        tr {
                            td { (p.arm) }
                            td.num { (p.completed) }
                            td.num { @match p.quality_share { Some(s) => { (format!("{:.1}%", s * 100.0)) }, None => { "—" } } }
                            td.num { @match p.quality_adjusted_cases { Some(v) => { (number(v)) }, None => { "—" } } }
                            td.num { @match p.quality_adjusted_per_hour { Some(v) => { (number(v)) }, None => { "—" } } }
                        }
                    }
                }
            }
        }
    }
}

fn segments(report: &Report) -> Markup {
    if report.segments.is_empty() {
        return html! {};
    }
    html! {
        h2 { "Segments" }
        @for s in &report.segments {
            h3 { "By " (s.attribute) }
            @if s.values.is_empty() {
                p.meta { "No outcomes by " (s.attribute) " yet." }
            } @else {
                table {
                    thead {
                        tr {
                            th { (s.attribute) }
                            @for a in &report.arms { th.num { (a.key) } }
                            @for a in report.arms.iter().skip(1) { th.num { "Lift " (a.key) } }
                        }
                    }
                    tbody {
                        @for v in &s.values {
                            tr {
                                td { (v.value) }
                                @for a in &v.arms { td.num { @if a.n > 0 { (number(a.mean)) br; small.meta { "n = " (a.n) } } @else { "—" } } }
                                @for l in &v.lifts {
                                    td.num {
                                        @match l.relative {
                                            Some(r) => { (signed_percent(r.estimate)) br; small.meta { (interval_pct(&r)) } }
                                            None => { "—" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @for h in &s.heterogeneity {
                p { "Does the lift of " (h.arm) " differ by " (s.attribute) "? Cochran's Q = " (number(h.q)) " on " (number(h.df)) " df, " (p_is(h.p_value)) ", I² = " (percent(h.i_squared)) "%"
                    @if h.p_value < 0.05 { " — " span.flag { "the effect differs between segments" } } }
            }
            @if !s.disparate_impact.is_empty() {
                table {
                    thead { tr { th { "Favourable outcome" } th { "Arm" } th.num { "Disparate impact" } th { "Least / most favoured" } } }
                    tbody {
                        @for d in &s.disparate_impact {
                            tr {
                                td { (humanize(&d.metric)) }
                                td { (d.arm) }
                                td class={ "num" (if d.flagged { " flag" } else { "" }) } { (format!("{:.2}", d.ratio)) @if d.flagged { " ▼ below 0.8" } }
                                td { (d.least_favoured) " / " (d.most_favoured) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn change_name(c: &Change) -> String {
    match c {
        Change::Created => "created".to_string(),
        Change::SpecUpdated => "spec updated".to_string(),
        Change::Status(t) => t.as_str().to_string(),
        Change::Rebaselined { epoch } => format!("re-baselined (epoch {epoch})"),
    }
}

fn provenance(page: &ExperimentPage) -> Markup {
    let v = &page.version;
    let spec = &v.spec;
    html! {
        h2 { "About this experiment" }
        table {
            tbody {
                tr { th { "Hypothesis" } td { (spec.hypothesis().unwrap_or("—")) } }
                tr { th { "Owner" } td { (spec.owner().unwrap_or("—")) } }
                tr { th { "Randomized by" } td { (format!("{:?}", spec.unit()).to_lowercase()) } }
                tr { th { "Spec version" } td { "v" (v.version) ", " (rfc3339(v.created_at)) } }
                tr { th { "Analysis" } td {
                    "alpha " (number(spec.analysis().alpha())) ", correction " (format!("{:?}", spec.analysis().correction()).to_lowercase())
                    @if spec.analysis().sequential() { ", sequential (τ = " (number(spec.analysis().sequential_tuning())) ")" } @else { ", fixed horizon" }
                    @if spec.analysis().auto_pause_on_harm() { ", pauses on harm" }
                } }
            }
        }
        h3 { "Epochs" }
        table {
            thead { tr { th { "Epoch" } th { "Started" } th { "Reason" } th.num { "Spec version" } } }
            tbody {
                @for e in &page.report.epochs {
                    tr {
                        td { a href={ "/experiments/" (v.key) "?epoch=" (e.epoch) } { (e.epoch) } @if e.current { " (shown)" } }
                        td { (e.started_at) }
                        td { (e.reason) }
                        td.num { "v" (e.version) }
                    }
                }
            }
        }
        @if page.epoch_effects.len() > 1 {
            h3 { "Effect by epoch" }
            p.meta { "The primary metric's decision (relative lift) per treatment in each epoch, each from that epoch's own data." }
            table {
                thead { tr { th { "Epoch" } th { "Started" } th { "Reason" } th { "Arm" } th.num { "Lift" } th { "Interval" } th { "Verdict" } } }
                tbody {
                    @for e in &page.epoch_effects {
                        tr {
                            td { a href={ "/experiments/" (v.key) "?epoch=" (e.epoch) } { (e.epoch) } }
                            td { (e.started_at) }
                            td { (e.reason) }
                            td { (e.arm) }
                            @if let Some((estimate, low, high)) = e.decision {
                                td.num { (signed_percent(estimate)) }
                                td { (signed_percent(low)) " to " (signed_percent(high)) }
                            } @else {
                                td.num { "–" }
                                td { "–" }
                            }
                            td { (e.verdict.as_str()) }
                        }
                    }
                }
            }
        }
        h3 { "Change history" }
        p.meta { "Every change is a version kept in the hash-chained audit log; the full log is at " a href={ "/v1/experiments/" (v.key) "/audit" } { "/v1/experiments/" (v.key) "/audit" } "." }
        table {
            thead { tr { th.num { "Version" } th { "When" } th { "Change" } th { "Status" } th { "Reason" } } }
            tbody {
                @for h in &page.versions {
                    tr {
                        td.num { "v" (h.version) }
                        td { (rfc3339(h.created_at)) }
                        td { (change_name(&h.change)) }
                        td { (h.status.as_str()) }
                        td { (h.reason.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

/// The sample-ratio check of each allocation period, when any period fails it.
fn period_srm(report: &Report) -> Markup {
    let failing: Vec<_> = report
        .allocation
        .iter()
        .filter_map(|a| a.srm.filter(|s| !s.ok).map(|s| (a.period, s)))
        .collect();
    html! {
        @if failing.is_empty() {
            p.meta.period-srm { "Each allocation period's assigned units match its weights (sample ratio checked per period)." }
        } @else {
            p.meta.period-srm {
                "Sample ratio mismatch within "
                @for (i, (period, s)) in failing.iter().enumerate() {
                    @if i > 0 { ", " }
                    "period " (period) " (χ² = " (number(s.chi2)) ", " (p_is(s.p_value)) ")"
                }
                "."
            }
        }
    }
}

/// The bandit leaderboard: arms by their chance of being best on stratified means.
fn leaderboard(report: &Report) -> Markup {
    let Some(board) = &report.bandit_leaderboard else {
        return html! {};
    };
    html! {
        h2 { "Bandit leaderboard" }
        table.leaderboard {
            thead { tr { th { "Arm" } th { "Mean (stratified)" } th { "Chance of being best" } th { "Expected loss" } } }
            tbody {
                @for a in &board.arms {
                    tr {
                        td { (a.arm) }
                        td { (number(a.mean)) " ± " (number(a.se)) }
                        td { (percent(a.prob_best)) "%" }
                        td { (number(a.expected_loss)) }
                    }
                }
            }
        }
        p.meta { "Ranked on " (humanize(&board.metric)) ": each arm's mean stratified by allocation period (" (board.strata) " periods), with normal posteriors under a flat prior. Expected loss is what choosing the arm costs, in the metric's unit, if the leading other arm is better." }
    }
}

/// Renders the result page.
pub fn render_experiment(page: &ExperimentPage) -> Markup {
    let report = &page.report;
    let spec = &page.version.spec;
    let arms: Vec<String> = spec.arms().iter().map(|a| a.key().to_string()).collect();
    let primary = spec.primary().key();
    let body = html! {
        h1 { (spec.name()) }
        p.meta {
            (report.experiment) " · " (status_badge(report.status))
            @if let Some(words) = before_data(report) { " · " (words) }
            " · spec v" (report.version)
            " · epoch " (report.epoch) " · " (report.policy) " allocation"
            @if let Some(owner) = spec.owner() { " · owner " (owner) }
        }
        (warnings(report))
        p.verdict { (report.verdict) }
        h2 { "Key results" }
        (kpi_table(report))
        (analysis_note(report))
        h2 { "Lifts at a glance" }
        figure {
            (charts::forest(&forest_rows(report)))
            figcaption { "Relative lift of each arm against " (spec.baseline().key()) ", with each decision's interval (the same as the table's). Colour and shape both show the verdict." }
        }
        h2 { (capitalized(&humanize(primary))) " over time" }
        figure {
            (charts::timeline(&page.history, &arms, &report.epochs, &report.drift, &page.model_changes, primary))
            figcaption { (charts::timeline_caption(&page.history, &report.epochs, &report.drift, &page.model_changes, primary)) }
        }
        @if report.bandit || report.allocation.len() > 1 {
            h2 { "Allocation over time" }
            figure {
                (charts::allocation(&report.allocation, &arms, report.bandit))
                figcaption { "Share of new units sent to each arm per allocation period. Under a bandit, means are also shown inverse-propensity weighted (IPW)." }
            }
            (period_srm(report))
        }
        (leaderboard(report))
        (health(report))
        (roi(report))
        (segments(report))
        (provenance(page))
    };
    layout(spec.name(), body)
}
