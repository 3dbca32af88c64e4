//! Words for people: the one-sentence verdict, the warnings, and the number, money and date formats they use.

use super::types::{ComparisonResult, Interval, Report, Verdict, Warning, WarningKind};
use crate::model::{Millis, Status};
use crate::spec::ExperimentSpec;

/// Year, month and day of the proleptic Gregorian calendar for days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // day is in 1..=31 and month in 1..=12, so both fit in u32.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// A UTC day (days since the Unix epoch) as `YYYY-MM-DD`.
pub fn format_day(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Unix milliseconds as an RFC 3339 UTC timestamp (`2026-03-01T09:30:00Z`, with `.mmm` when
/// the milliseconds are not zero).
pub fn format_ts(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let day = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (h, min, s) = (sod / 3600, sod % 3600 / 60, sod % 60);
    let date = format_day(day);
    if millis == 0 {
        format!("{date}T{h:02}:{min:02}:{s:02}Z")
    } else {
        format!("{date}T{h:02}:{min:02}:{s:02}.{millis:03}Z")
    }
}

/// A key made readable: `ai_assist` → `AI assist`.
pub fn humanize(key: &str) -> String {
    key.split(['_', '-'])
        .filter(|w| !w.is_empty())
        .map(|w| match w {
            "ai" | "llm" | "gpt" | "csat" | "nps" | "sla" | "id" => w.to_uppercase(),
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A number with precision that suits its size (no trailing noise, no `-0`).
pub fn number(x: f64) -> String {
    let a = x.abs();
    let s = if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    };
    if s.starts_with('-') && s.trim_start_matches(['-', '0', '.']).is_empty() {
        s[1..].to_string()
    } else {
        s
    }
}

/// A fraction as a percentage without sign: 0.184 → `18`, 0.047 → `4.7`.
pub fn percent(x: f64) -> String {
    let p = (x * 100.0).abs();
    if p >= 9.95 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    }
}

/// A fraction as a signed percentage: 0.05 → `+5.0%`, −0.18 → `−18%`.
pub fn signed_percent(x: f64) -> String {
    let sign = if x < 0.0 { "−" } else { "+" };
    format!("{sign}{}%", percent(x))
}

/// A money amount, rounded for reading: `$850`, `$41k`, `$1.2M`, `€3.4k`.
pub fn money(amount: f64, currency: &str) -> String {
    let symbol = match currency {
        "USD" => "$".to_string(),
        "EUR" => "€".to_string(),
        "GBP" => "£".to_string(),
        "JPY" => "¥".to_string(),
        other => format!("{other} "),
    };
    let sign = if amount < 0.0 { "−" } else { "" };
    let a = amount.abs();
    let body = if a >= 1e6 {
        format!("{:.1}M", a / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", a / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", a / 1e3)
    } else {
        format!("{a:.0}")
    };
    format!("{sign}{symbol}{body}")
}

/// The confidence level as a percentage: alpha 0.05 → `95`.
pub fn level(alpha: f64) -> String {
    let l = (1.0 - alpha) * 100.0;
    if (l - l.round()).abs() < 1e-9 {
        format!("{l:.0}")
    } else {
        format!("{l:.1}")
    }
}

/// "12–23%" for an interval on one side of zero (magnitudes ascending), "−3% to +5%" otherwise.
fn interval_words(i: &Interval) -> String {
    if i.ci_low > 0.0 || i.ci_high < 0.0 {
        let (a, b) = (i.ci_low.abs(), i.ci_high.abs());
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        format!("{}–{}%", percent(lo), percent(hi))
    } else {
        format!(
            "{} to {}",
            signed_percent(i.ci_low),
            signed_percent(i.ci_high)
        )
    }
}

fn comparison_for<'a>(report: &'a Report, metric: &str, arm: &str) -> Option<&'a ComparisonResult> {
    report
        .metrics
        .iter()
        .find(|m| m.key == metric)?
        .comparisons
        .iter()
        .find(|c| c.arm == arm)
}

/// The first clause: what the featured arm does to the primary metric.
fn primary_clause(spec: &ExperimentSpec, report: &Report, arm: &str) -> String {
    let metric = spec.primary().key();
    let name = humanize(metric);
    let who = humanize(arm);
    let baseline = humanize(spec.baseline().key());
    let lv = level(spec.analysis().alpha());
    let Some(c) = comparison_for(report, metric, arm).filter(|c| c.absolute.is_some()) else {
        return format!("not enough data yet to compare {who} with {baseline} on {name}");
    };
    let (estimate, ci) = match (c.relative, c.absolute) {
        (Some(r), _) => (r.estimate, format!("{lv}% CI {}", interval_words(&r))),
        (None, Some(a)) => (
            a.estimate,
            format!("{lv}% CI {} to {}", number(a.ci_low), number(a.ci_high)),
        ),
        (None, None) => return format!("not enough data yet to compare {who} on {name}"),
    };
    let magnitude = match (c.relative, c.absolute) {
        (Some(r), _) => format!("{}%", percent(r.estimate)),
        (None, Some(a)) => number(a.estimate.abs()),
        (None, None) => String::new(),
    };
    let verb = if estimate < 0.0 { "cuts" } else { "raises" };
    match c.verdict {
        Verdict::Better => format!("{who} {verb} {name} by {magnitude} ({ci})"),
        Verdict::Worse => format!("{who} {verb} {name} by {magnitude} ({ci}), which is worse"),
        Verdict::Inconclusive => format!("{who} shows no clear change in {name} ({ci})"),
    }
}

/// The guardrail clause: each guardrail of the featured arm, unchanged, better or worse.
fn guardrail_clause(report: &Report, arm: &str) -> Option<String> {
    let parts: Vec<String> = report
        .guardrails
        .iter()
        .filter(|g| g.arm == arm)
        .map(|g| {
            let name = humanize(&g.metric);
            let lift = g
                .relative
                .map(|r| format!(" ({})", signed_percent(r.estimate)))
                .unwrap_or_default();
            match g.verdict {
                Verdict::Inconclusive => format!("{name} unchanged"),
                Verdict::Better => format!("{name} better{lift}"),
                Verdict::Worse => format!("{name} worse{lift}"),
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The money clause, when ROI settings and a savings estimate exist.
fn roi_clause(report: &Report) -> Option<String> {
    let roi = report.roi.as_ref()?;
    let s = roi.monthly_savings?;
    let c = &roi.currency;
    Some(if s.ci_low > 0.0 {
        format!("saves about {} a month", money(s.estimate, c))
    } else if s.ci_high < 0.0 {
        format!("costs about {} more a month", money(-s.estimate, c))
    } else {
        format!(
            "savings not yet clear ({} to {} a month)",
            money(s.ci_low, c),
            money(s.ci_high, c)
        )
    })
}

/// One sentence a manager can repeat, such as "AI assist cuts cycle time by 18% (95% CI
/// 12–23%); escalated unchanged; saves about $41k a month."
pub(crate) fn verdict(spec: &ExperimentSpec, report: &Report) -> String {
    let Some(arm) = report.featured_arm.as_deref() else {
        return "The experiment has no treatment arm to compare.".to_string();
    };
    let mut clauses = vec![primary_clause(spec, report, arm)];
    clauses.extend(guardrail_clause(report, arm));
    clauses.extend(roi_clause(report));
    format!("{}.", capitalize(&clauses.join("; ")))
}

/// At most this many drift detections are spelled out in warnings.
const MAX_DRIFT_WARNINGS: usize = 5;

/// Problems a reader must know before trusting the numbers.
pub(crate) fn warnings(spec: &ExperimentSpec, report: &Report) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut push = |kind, message: String| out.push(Warning { kind, message });
    if report.status == Status::Paused {
        let message = match &report.pause_reason {
            Some(reason) => format!("The experiment is paused: {reason}."),
            None => "The experiment is paused.".to_string(),
        };
        push(WarningKind::Paused, message);
    }
    if let Some(h) = &report.harm {
        push(
            WarningKind::Harm,
            format!(
                "Guardrail {} is significantly worse for {} under the always-valid test (p = {}).",
                humanize(&h.metric),
                humanize(&h.arm),
                p_value(h.p_value)
            ),
        );
    }
    if !report.srm.ok {
        push(
            WarningKind::Srm,
            format!(
                "Sample ratio mismatch: assigned units do not match the expected shares (p = {}); check the assignment path before trusting the results.",
                p_value(report.srm.p_value)
            ),
        );
    }
    if !report.attrition.ok {
        let shares: Vec<String> = report
            .attrition
            .arms
            .iter()
            .filter_map(|c| {
                c.coverage
                    .map(|v| format!("{} {}%", humanize(&c.arm), percent(v)))
            })
            .collect();
        push(
            WarningKind::Attrition,
            format!(
                "Outcome coverage differs between arms ({}; p = {}), so the arms' outcomes may not be comparable.",
                shares.join(", "),
                p_value(report.attrition.p_value)
            ),
        );
    }
    for g in report.guardrails.iter().filter(|g| !g.ok) {
        let lift = g
            .relative
            .map(|r| format!(" ({})", signed_percent(r.estimate)))
            .unwrap_or_default();
        push(
            WarningKind::Guardrail,
            format!(
                "Guardrail {} is significantly worse for {}{lift}.",
                humanize(&g.metric),
                humanize(&g.arm)
            ),
        );
    }
    for d in report.drift.iter().take(MAX_DRIFT_WARNINGS) {
        push(
            WarningKind::Drift,
            format!(
                "{} drifted {} in {} at {} ({}); {}.",
                capitalize(&humanize(&d.metric)),
                d.direction.as_str(),
                humanize(&d.arm),
                d.detected_at,
                d.detector.as_str(),
                match d.action {
                    super::types::DriftAction::RebaselineProposed => "re-baselining is proposed",
                    super::types::DriftAction::Rebaselined => "a new epoch was started",
                }
            ),
        );
    }
    if report.drift.len() > MAX_DRIFT_WARNINGS {
        push(
            WarningKind::Drift,
            format!(
                "{} more drift detections are listed in the results.",
                report.drift.len() - MAX_DRIFT_WARNINGS
            ),
        );
    }
    for s in &report.segments {
        for di in s.disparate_impact.iter().filter(|d| d.flagged) {
            push(
                WarningKind::DisparateImpact,
                format!(
                    "{}: {} = {} gets the favourable outcome at {}% of the rate of {} in {} (below four fifths).",
                    capitalize(&humanize(&di.metric)),
                    s.attribute,
                    di.least_favoured,
                    percent(di.ratio),
                    di.most_favoured,
                    humanize(&di.arm)
                ),
            );
        }
    }
    let primary = spec.primary().key();
    let missing = report
        .metrics
        .iter()
        .find(|m| m.key == primary)
        .is_some_and(|m| m.comparisons.iter().any(|c| c.absolute.is_none()));
    if missing {
        push(
            WarningKind::LowData,
            format!(
                "Not enough data yet to compare every arm on {}.",
                humanize(primary)
            ),
        );
    }
    out
}

/// A p-value for reading: `0.031`, `<0.0001`.
pub fn p_value(p: f64) -> String {
    if p < 1e-4 {
        "<0.0001".to_string()
    } else if p < 0.01 {
        format!("{p:.4}")
    } else {
        format!("{p:.3}")
    }
}
