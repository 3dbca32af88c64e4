//! Words for people: the one-sentence verdict, the warnings, and the number, money and date formats they use.

use super::compare::{len_f64, MIN_UNITS_PER_ARM};
use super::types::{
    ComparisonResult, Decision, DecisionMethod, Interval, Report, Verdict, Warning, WarningKind,
};
use crate::model::{HandledBy, Millis, Status};
use crate::spec::{ArmRole, Direction, ExperimentSpec, MetricRole};

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

/// A number with precision that suits its size (no trailing noise, no `-0`); a whole number
/// has no decimals (`2`, not `2.00`).
pub fn number(x: f64) -> String {
    let a = x.abs();
    let s = if a >= 100.0 || (x.fract() == 0.0 && a < 1e15) {
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

/// `x` rounded half away from zero to `decimals` places.
fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// A money amount, rounded for reading: `$850`, `$41k`, `$1.2M`, `€3.4k`.
///
/// The amount is first rounded to cents, then half away from zero: a cost per case is a mean
/// whose last bits depend on the order the outcomes were folded in, so 19.5 may arrive as
/// 19.499999999999996 on one load and 19.5 on the next; both read `$20`. (Formatting with
/// `{:.0}` alone would round the exact binary value half to even and show `$19` or `$20`.)
pub fn money(amount: f64, currency: &str) -> String {
    let symbol = match currency {
        "USD" => "$".to_string(),
        "EUR" => "€".to_string(),
        "GBP" => "£".to_string(),
        "JPY" => "¥".to_string(),
        other => format!("{other} "),
    };
    let a = round_to(amount.abs(), 2);
    let body = if a >= 1e6 {
        format!("{:.1}M", round_to(a / 1e6, 1))
    } else if a >= 1e4 {
        format!("{:.0}k", round_to(a / 1e3, 0))
    } else if a >= 1e3 {
        format!("{:.1}k", round_to(a / 1e3, 1))
    } else {
        format!("{:.0}", round_to(a, 0))
    };
    // No "−$0" for an amount that rounds to nothing.
    let sign = if amount < 0.0 && body != "0" {
        "−"
    } else {
        ""
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

/// A decision's interval with its method and level: "always-valid 95% interval 12–23%" (the
/// magnitudes, for a sentence whose verb gives the direction).
pub fn decision_interval(d: &Decision) -> String {
    let i = Interval {
        estimate: d.estimate,
        ci_low: d.ci_low,
        ci_high: d.ci_high,
    };
    format!(
        "{} {}% interval {}",
        d.method.interval_name(),
        level(1.0 - d.interval_level),
        interval_words(&i)
    )
}

/// A decision's interval with both ends signed: "always-valid 90% interval −43% to −1.4%",
/// for a sentence with no verb to give the direction.
pub fn decision_interval_signed(d: &Decision) -> String {
    format!(
        "{} {}% interval {} to {}",
        d.method.interval_name(),
        level(1.0 - d.interval_level),
        signed_percent(d.ci_low),
        signed_percent(d.ci_high)
    )
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

/// "cuts cycle time by 18% (always-valid 95% interval 12–23%)".
fn effect_words(name: &str, d: &Decision) -> String {
    let verb = if d.estimate < 0.0 { "cuts" } else { "raises" };
    format!(
        "{verb} {name} by {}% ({})",
        percent(d.estimate),
        decision_interval(d)
    )
}

/// The first clause: what the featured arm does to the primary metric, from its decision.
fn primary_clause(spec: &ExperimentSpec, report: &Report, arm: &str) -> String {
    let metric = spec.primary().key();
    let name = humanize(metric);
    let who = humanize(arm);
    let baseline = humanize(spec.baseline().key());
    let Some(c) = comparison_for(report, metric, arm) else {
        return format!("not enough data yet to compare {who} with {baseline} on {name}");
    };
    if c.verdict == Verdict::Collecting {
        return format!(
            "collecting data: {who} and {baseline} have {} on {name} before a verdict",
            c.evidence.shortfall()
        );
    }
    let Some(d) = c.decision else {
        return format!(
            "{who} cannot be compared with {baseline} on {name} yet ({})",
            c.note.as_deref().unwrap_or("the lift is undefined")
        );
    };
    match c.verdict {
        Verdict::Better => format!("{who} {}", effect_words(&name, &d)),
        Verdict::Worse => format!("{who} {}, which is worse", effect_words(&name, &d)),
        Verdict::Inconclusive | Verdict::Collecting => format!(
            "{who} shows no clear change in {name} ({})",
            decision_interval(&d)
        ),
    }
}

/// The other metrics of the featured arm that the decision calls better or worse, harms
/// first, then the guardrails with no clear harm.
fn other_clauses(spec: &ExperimentSpec, report: &Report, arm: &str) -> Vec<String> {
    let primary = spec.primary().key();
    let others: Vec<(&str, &ComparisonResult, bool)> = report
        .metrics
        .iter()
        .filter(|m| m.key != primary)
        .filter_map(|m| {
            let c = m.comparisons.iter().find(|c| c.arm == arm)?;
            Some((m.key.as_str(), c, m.role == MetricRole::Guardrail))
        })
        .collect();
    let mut out = Vec::new();
    for (key, c, guardrail) in &others {
        let Some(d) = c.decision.filter(|_| c.verdict == Verdict::Worse) else {
            continue;
        };
        let name = humanize(key);
        out.push(if *guardrail {
            format!(
                "harms guardrail {name}: {} ({})",
                signed_percent(d.estimate),
                decision_interval_signed(&d)
            )
        } else {
            format!("{}, which is worse", effect_words(&name, &d))
        });
    }
    for (key, c, _) in &others {
        if let Some(d) = c.decision.filter(|_| c.verdict == Verdict::Better) {
            out.push(effect_words(&humanize(key), &d));
        }
    }
    let holding: Vec<String> = others
        .iter()
        .filter(|(_, c, guardrail)| *guardrail && c.verdict == Verdict::Inconclusive)
        .filter_map(|(key, c, _)| {
            let d = c.decision?;
            Some(format!(
                "{} ({})",
                humanize(key),
                decision_interval_signed(&d)
            ))
        })
        .collect();
    if !holding.is_empty() {
        out.push(format!("no clear harm to {}", holding.join(", ")));
    }
    out
}

/// A segment of the primary metric significantly harmed for `arm`: its lift's p-value is
/// below alpha divided by the number of segment lifts of the arm (Bonferroni), on the harmful side.
fn segment_clauses(spec: &ExperimentSpec, report: &Report, arm: &str) -> Vec<String> {
    let mut lifts: Vec<(&str, &str, &Interval, f64)> = Vec::new();
    for s in &report.segments {
        for v in &s.values {
            for l in v.lifts.iter().filter(|l| l.arm == arm) {
                if let (Some(i), Some(p)) = (l.relative.as_ref(), l.p_value) {
                    lifts.push((&s.attribute, &v.value, i, p));
                }
            }
        }
    }
    let alpha = spec.analysis().alpha() / len_f64(lifts.len().max(1));
    let name = humanize(spec.primary().key());
    let harmful = |i: &Interval| match spec.primary().direction() {
        Direction::Increase => i.ci_high < 0.0,
        Direction::Decrease => i.ci_low > 0.0,
    };
    lifts
        .into_iter()
        .filter(|(_, _, i, p)| *p < alpha && harmful(i))
        .map(|(attribute, value, i, p)| {
            format!(
                "worse for {attribute} {value} ({name} {}, {})",
                signed_percent(i.estimate),
                p_is(p)
            )
        })
        .collect()
}

/// Says so when the featured arm's quality-adjusted output is lower than the baseline's.
fn quality_clause(spec: &ExperimentSpec, report: &Report, arm: &str) -> Option<String> {
    let of = |key: &str| report.productivity.arms.iter().find(|a| a.arm == key);
    let (b, t) = (of(spec.baseline().key())?, of(arm)?);
    if b.completed < MIN_UNITS_PER_ARM || t.completed < MIN_UNITS_PER_ARM {
        return None;
    }
    if let (Some(bh), Some(th)) = (b.quality_adjusted_per_hour, t.quality_adjusted_per_hour) {
        return (th < bh).then(|| {
            format!(
                "quality-adjusted output falls from {} to {} cases an hour",
                number(bh),
                number(th)
            )
        });
    }
    let (bs, ts) = (b.quality_share?, t.quality_share?);
    (ts < bs).then(|| {
        format!(
            "the share of cases that met quality falls from {}% to {}%",
            percent(bs),
            percent(ts)
        )
    })
}

/// The money clause, net of fixed costs first, when ROI settings and a savings estimate exist.
fn roi_clause(report: &Report) -> Option<String> {
    let roi = report.roi.as_ref()?;
    let s = roi.net_monthly_savings?;
    let c = &roi.currency;
    let net = if roi.fixed_monthly_cost > 0.0 {
        format!(" net of {} fixed costs", money(roi.fixed_monthly_cost, c))
    } else {
        String::new()
    };
    Some(if s.ci_low > 0.0 {
        format!("saves about {} a month{net}", money(s.estimate, c))
    } else if s.ci_high < 0.0 {
        format!("costs about {} more a month{net}", money(-s.estimate, c))
    } else {
        format!(
            "net savings not yet clear ({} to {} a month{net})",
            money(s.ci_low, c),
            money(s.ci_high, c)
        )
    })
}

/// What to say instead of a number while no unit is assigned: `not started` for a draft, `no
/// units assigned yet` otherwise; `None` once units are assigned.
pub fn before_data(report: &Report) -> Option<&'static str> {
    if report.analysis.units > 0 {
        return None;
    }
    Some(match report.status {
        Status::Draft => "not started",
        _ => "no units assigned yet",
    })
}

/// Why a power below target and a better or worse verdict both hold, for the power card: the
/// verdict reads the decision interval, while power is for the spec's minimum detectable
/// effect. `None` when power is on target or the featured arm's primary verdict is not decided.
pub fn power_note(report: &Report) -> Option<String> {
    let power = report.power.as_ref()?;
    let below_target = power.achieved_power.is_some_and(|a| a < power.target_power)
        || power.more_units_needed.is_some_and(|more| more > 0);
    if !below_target {
        return None;
    }
    let c = comparison_for(report, &power.metric, report.featured_arm.as_deref()?)?;
    let d = c.decision?;
    if !matches!(c.verdict, Verdict::Better | Verdict::Worse) {
        return None;
    }
    let a = &report.analysis;
    let not_final = a.method == DecisionMethod::Fixed && !a.final_answer;
    let head = if not_final {
        "Verdict so far"
    } else {
        "Verdict already reached"
    };
    let why = if d.estimate.abs() >= power.mde {
        format!(
            "the effect found, {}, is larger than the {}% lift this power is for",
            signed_percent(d.estimate),
            percent(power.mde)
        )
    } else {
        format!(
            "its interval excludes no change, even with less power than planned for a {}% lift",
            percent(power.mde)
        )
    };
    let next = match a.planned_units.filter(|_| not_final) {
        Some(planned) => format!("the fixed-horizon answer is final at {planned} units"),
        None => "more units would narrow its interval".to_string(),
    };
    Some(format!("{head} ({}): {why}; {next}.", c.verdict.as_str()))
}

/// One sentence a manager can repeat, such as "AI assist cuts cycle time by 18% (always-valid
/// 95% interval 12–23%); harms guardrail escalated: +9.0% (…); saves about $41k a month."
///
/// It names every metric whose decision is better or worse (harms first), the guardrails with
/// no clear harm, a significantly harmed segment and a drop in quality-adjusted output; it
/// says nothing of metrics still collecting, and never calls an inconclusive result unchanged.
pub(crate) fn verdict(spec: &ExperimentSpec, report: &Report) -> String {
    let Some(arm) = report.featured_arm.as_deref() else {
        return "The experiment has no treatment arm to compare.".to_string();
    };
    if report.analysis.units == 0 {
        return match report.status {
            Status::Draft => {
                "Not started: the experiment is a draft and no units are assigned yet."
            }
            _ => "No units assigned yet, so there is nothing to compare.",
        }
        .to_string();
    }
    let mut clauses = vec![primary_clause(spec, report, arm)];
    clauses.extend(other_clauses(spec, report, arm));
    clauses.extend(segment_clauses(spec, report, arm));
    clauses.extend(quality_clause(spec, report, arm));
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
    if !report.srm.ok {
        push(
            WarningKind::Srm,
            format!(
                "Sample ratio mismatch: assigned units do not match the expected shares ({}); check the assignment path before trusting the results.",
                p_is(report.srm.p_value)
            ),
        );
    }
    let failing: Vec<String> = report
        .allocation
        .iter()
        .filter(|a| a.srm.is_some_and(|s| !s.ok))
        .map(|a| a.period.to_string())
        .collect();
    if !failing.is_empty() {
        push(
            WarningKind::PeriodSrm,
            format!(
                "Sample ratio mismatch within allocation period {}: assigned units do not match that period's weights; check the assignment path before trusting the results.",
                failing.join(", ")
            ),
        );
    }
    if report.stratified && !report.bandit {
        push(
            WarningKind::Ramped,
            "Ramped: the weights changed during the epoch, so estimates are stratified by period (each allocation period compared within itself, weighted by its share of units).".to_string(),
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
                "Outcome coverage differs between arms ({}; {}), so the arms' outcomes may not be comparable.",
                shares.join(", "),
                p_is(report.attrition.p_value)
            ),
        );
    }
    for (i, g) in report.guardrails.iter().filter(|g| !g.ok).enumerate() {
        let Some(d) = g.decision else { continue };
        // The first harmed guardrail is the one `auto_pause_on_harm` acts on.
        let kind = if i == 0 {
            WarningKind::Harm
        } else {
            WarningKind::Guardrail
        };
        push(
            kind,
            format!(
                "Guardrail {} is significantly worse for {}: {} ({}, harm test {}).",
                humanize(&g.metric),
                humanize(&g.arm),
                signed_percent(d.estimate),
                decision_interval_signed(&d),
                p_is(d.p_value)
            ),
        );
    }
    if let Some(arm) = report.featured_arm.as_deref() {
        for clause in segment_clauses(spec, report, arm) {
            push(
                WarningKind::Segment,
                format!("{} is {clause}.", capitalize(&humanize(arm))),
            );
        }
    }
    for arm in report.arms.iter().filter(|a| a.role == ArmRole::Baseline) {
        let said: u64 = arm.handled_by.values().sum();
        let ai = arm.handled_by.get(&HandledBy::Ai).copied().unwrap_or(0);
        let hybrid = arm.handled_by.get(&HandledBy::Hybrid).copied().unwrap_or(0);
        if ai + hybrid > 0 {
            push(
                WarningKind::Contamination,
                format!(
                    "{} of {said} outcomes of the baseline {} say AI took part ({ai} by AI, {hybrid} hybrid): the router may be sending baseline tasks to the AI path, which shrinks every difference measured here.",
                    ai + hybrid,
                    humanize(&arm.key),
                ),
            );
        }
    }
    let a = &report.analysis;
    if a.method == DecisionMethod::Fixed && !a.final_answer {
        push(
            WarningKind::NotFinal,
            format!(
                "Fixed-horizon analysis: its answer is final only at {} units ({} so far); looking earlier inflates false positives.",
                a.planned_units.map_or("the planned".to_string(), |p| p.to_string()),
                a.units
            ),
        );
    }
    for d in report.drift.iter().take(MAX_DRIFT_WARNINGS) {
        push(
            WarningKind::Drift,
            format!(
                "{} drifted {} in {} at {} ({}); workload drift, which moves the level and does not re-baseline by itself.",
                capitalize(&humanize(&d.metric)),
                d.direction.as_str(),
                humanize(&d.arm),
                d.detected_at,
                d.detector.as_str(),
            ),
        );
    }
    for d in report.effect_drift.iter().take(MAX_DRIFT_WARNINGS) {
        let pct = |e: &crate::drift::EffectEstimate| {
            format!(
                "{:+.1}% ({:+.1}% to {:+.1}%)",
                e.estimate * 100.0,
                e.ci_low * 100.0,
                e.ci_high * 100.0
            )
        };
        push(
            WarningKind::EffectDrift,
            format!(
                "The {} arm's advantage changed: its lift on {} over {} went from {} to {} at {}; {}.",
                humanize(&d.arm),
                humanize(&d.metric),
                humanize(&d.baseline),
                pct(&d.effect_before),
                pct(&d.effect_after),
                d.detected_at,
                match d.action {
                    super::types::DriftAction::Rebaselined => "a new epoch was started",
                    _ => "re-baselining is proposed",
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
        .is_some_and(|m| m.comparisons.iter().any(|c| c.decision.is_none()));
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

/// A p-value after `p = ` or `p `, or as a table cell: `0.031`, `<0.0001`; in a sentence use
/// [`p_is`], which never writes `p = <0.0001`.
pub fn p_value(p: f64) -> String {
    if p < 1e-4 {
        "<0.0001".to_string()
    } else if p < 0.01 {
        format!("{p:.4}")
    } else {
        format!("{p:.3}")
    }
}

/// A p-value in a sentence: `p = 0.031`, `p < 0.0001`.
pub fn p_is(p: f64) -> String {
    let value = p_value(p);
    match value.strip_prefix('<') {
        Some(bound) => format!("p < {bound}"),
        None => format!("p = {value}"),
    }
}
