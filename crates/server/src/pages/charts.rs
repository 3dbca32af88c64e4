//! SVG charts written by the templates: the forest plot of lifts, the primary metric over time (by the hour or the day), and the allocation history.
//!
//! Colours follow the Okabe–Ito palette (safe for the common colour-vision deficiencies), and
//! every colour comes with a second cue: marker shapes for verdicts, dash patterns for arms.

use liftlab_domain::drift::ShiftDirection;
use liftlab_domain::fold::{MS_PER_DAY, MS_PER_HOUR};
use liftlab_domain::report::text::{format_day, number, signed_percent};
use liftlab_domain::report::{
    AllocationEntry, Bucket, DriftEntry, EpochEntry, TimelinePoint, Verdict, HOURLY_SPAN_HOURS,
};
use maud::{html, Markup};

/// Okabe–Ito colours, baseline first (black), then the treatments.
pub const ARM_COLOURS: [&str; 8] = [
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#F0E442",
];

/// Dash patterns that tell arms apart without colour.
const ARM_DASHES: [&str; 4] = ["", "7 4", "2 3", "10 3 2 3"];

/// The verdict colours: bluish green, vermillion, and blue for inconclusive.
pub fn verdict_colour(v: Verdict) -> &'static str {
    match v {
        Verdict::Better => "#009E73",
        Verdict::Worse => "#D55E00",
        Verdict::Inconclusive | Verdict::Collecting => "#0072B2",
    }
}

/// The colour of the arm at `index` in the spec's order.
pub fn arm_colour(index: usize) -> &'static str {
    ARM_COLOURS[index % ARM_COLOURS.len()]
}

fn arm_dash(index: usize) -> &'static str {
    ARM_DASHES[index % ARM_DASHES.len()]
}

/// A count as a coordinate; chart counts are tiny, so the conversion is exact.
fn f(n: usize) -> f64 {
    // Exact for every n < 2^53.
    n as f64
}

/// Rounds a coordinate for the markup.
fn c(x: f64) -> String {
    format!("{x:.1}")
}

/// About `count` round tick values (1, 2 or 5 × 10^k apart) covering [lo, hi].
fn ticks(lo: f64, hi: f64, count: u32) -> Vec<f64> {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return vec![lo];
    }
    let raw = span / f64::from(count.max(1));
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let mut out = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// A linear map from [d0, d1] to [r0, r1].
#[derive(Clone, Copy)]
struct Scale {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Scale {
    fn new(d0: f64, d1: f64, r0: f64, r1: f64) -> Self {
        let (d0, d1) = if d1 > d0 {
            (d0, d1)
        } else {
            (d0 - 0.5, d0 + 0.5)
        };
        Self { d0, d1, r0, r1 }
    }

    fn at(&self, v: f64) -> f64 {
        self.r0 + (v - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)
    }
}

/// One row of the forest plot.
pub struct ForestRow {
    /// What the row compares (metric and arm).
    pub label: String,
    /// The relative lift.
    pub estimate: f64,
    /// The interval's lower end.
    pub ci_low: f64,
    /// The interval's upper end.
    pub ci_high: f64,
    /// The interval's name: its method and level, such as `always-valid 95%`.
    pub interval: String,
    /// The verdict, for colour and marker.
    pub verdict: Verdict,
}

fn marker(v: Verdict, x: f64, y: f64, colour: &str) -> Markup {
    match v {
        Verdict::Better => html! { circle cx=(c(x)) cy=(c(y)) r="6" fill=(colour) {} },
        Verdict::Worse => {
            html! { rect x=(c(x - 5.5)) y=(c(y - 5.5)) width="11" height="11" fill=(colour) {} }
        }
        Verdict::Inconclusive | Verdict::Collecting => html! {
            polygon points=(format!("{},{} {},{} {},{} {},{}", c(x), c(y - 7.0), c(x + 7.0), c(y), c(x), c(y + 7.0), c(x - 7.0), c(y)))
                fill="white" stroke=(colour) stroke-width="2" {}
        },
    }
}

/// The forest plot: each comparison's relative lift with its interval around the zero line.
pub fn forest(rows: &[ForestRow]) -> Markup {
    if rows.is_empty() {
        return html! { p.meta { "No lifts to plot yet." } };
    }
    let (w, label_w, x0, x1, row_h, top) = (760.0, 230.0, 240.0, 620.0, 30.0, 28.0);
    let lo = rows.iter().map(|r| r.ci_low).fold(0.0, f64::min);
    let hi = rows.iter().map(|r| r.ci_high).fold(0.0, f64::max);
    let pad = ((hi - lo) * 0.08).max(0.01);
    let sx = Scale::new(lo - pad, hi + pad, x0, x1);
    let h = top + row_h * f(rows.len()) + 46.0;
    let bottom = top + row_h * f(rows.len());
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {w} {}", c(h))) width=(w) height=(c(h))
            role="img" aria-label="Forest plot of relative lifts with confidence intervals" {
            @for t in ticks(lo - pad, hi + pad, 5) {
                line x1=(c(sx.at(t))) x2=(c(sx.at(t))) y1=(c(top - 6.0)) y2=(c(bottom)) stroke="#e4e4e4" {}
                text x=(c(sx.at(t))) y=(c(top - 10.0)) font-size="11" text-anchor="middle" fill="#595959" { (signed_percent(t)) }
            }
            line x1=(c(sx.at(0.0))) x2=(c(sx.at(0.0))) y1=(c(top - 6.0)) y2=(c(bottom)) stroke="#1b1b1b" stroke-width="1.5" {}
            @for (i, r) in rows.iter().enumerate() {
                @let y = top + row_h * (f(i) + 0.5);
                @let colour = verdict_colour(r.verdict);
                g {
                    title { (r.label) ": " (signed_percent(r.estimate)) " (" (r.interval) " interval " (signed_percent(r.ci_low)) " to " (signed_percent(r.ci_high)) "), " (r.verdict.as_str()) }
                    text x=(c(label_w)) y=(c(y + 4.0)) font-size="13" text-anchor="end" { (r.label) }
                    line x1=(c(sx.at(r.ci_low))) x2=(c(sx.at(r.ci_high))) y1=(c(y)) y2=(c(y)) stroke=(colour) stroke-width="3" {}
                    (marker(r.verdict, sx.at(r.estimate), y, colour))
                    text x=(c(x1 + 12.0)) y=(c(y + 4.0)) font-size="12" fill=(colour) {
                        (signed_percent(r.estimate)) " " (r.verdict.as_str())
                    }
                }
            }
            @let ly = bottom + 26.0;
            (marker(Verdict::Better, x0, ly, verdict_colour(Verdict::Better)))
            text x=(c(x0 + 12.0)) y=(c(ly + 4.0)) font-size="12" { "better" }
            (marker(Verdict::Worse, x0 + 90.0, ly, verdict_colour(Verdict::Worse)))
            text x=(c(x0 + 102.0)) y=(c(ly + 4.0)) font-size="12" { "worse" }
            (marker(Verdict::Inconclusive, x0 + 175.0, ly, verdict_colour(Verdict::Inconclusive)))
            text x=(c(x0 + 187.0)) y=(c(ly + 4.0)) font-size="12" { "inconclusive" }
            text x=(c(x0 + 300.0)) y=(c(ly + 4.0)) font-size="12" fill="#595959" { "bars: each decision's interval" }
        }
    }
}

/// A time in Unix milliseconds as a coordinate; such times are far below 2^53, so exact.
fn fms(ms: i64) -> f64 {
    // Exact for |ms| < 2^53 (until the year 287,396).
    ms as f64
}

/// The time axis of the over-time chart: by the hour when every point is hourly, else by the
/// day, from the first bucket with data to the last.
struct TimeAxis {
    /// Milliseconds per step: an hour or a day.
    unit: i64,
    /// The first and last bucket starts, Unix milliseconds.
    first: i64,
    last: i64,
}

impl TimeAxis {
    fn new(points: &[TimelinePoint]) -> Self {
        let hourly = points.iter().all(|p| p.bucket == Bucket::Hour);
        TimeAxis {
            unit: if hourly { MS_PER_HOUR } else { MS_PER_DAY },
            first: points.iter().map(|p| p.start_ms).min().unwrap_or(0),
            last: points.iter().map(|p| p.start_ms).max().unwrap_or(0),
        }
    }

    fn hourly(&self) -> bool {
        self.unit == MS_PER_HOUR
    }

    /// The start of the step a time falls in, where the chart marks it, if the chart spans it.
    fn place(&self, ms: i64) -> Option<i64> {
        let at = ms.div_euclid(self.unit) * self.unit;
        (self.first <= at && at <= self.last).then_some(at)
    }

    /// A time as an axis label: the date, or the date and hour on an hourly axis.
    fn label(&self, ms: i64) -> String {
        if self.hourly() {
            hour_label(ms)
        } else {
            format_day(ms.div_euclid(MS_PER_DAY))
        }
    }

    /// Round hours strictly inside the axis for labelled ticks (about six at most), at 1, 2,
    /// 3, 6, 12 or 24 hours apart; none on a daily axis.
    fn hour_ticks(&self) -> Vec<i64> {
        if !self.hourly() {
            return Vec::new();
        }
        let hours = (self.last - self.first) / MS_PER_HOUR;
        let step = [1, 2, 3, 6, 12, 24]
            .into_iter()
            .find(|s| hours / s <= 6)
            .unwrap_or(24)
            * MS_PER_HOUR;
        let mut t = (self.first / step + 1) * step;
        let mut out = Vec::new();
        while t < self.last {
            out.push(t);
            t += step;
        }
        out
    }
}

/// `2026-12-03 09:00`: a time's date and hour (UTC).
fn hour_label(ms: i64) -> String {
    let hour = ms.rem_euclid(MS_PER_DAY) / MS_PER_HOUR;
    format!("{} {hour:02}:00", format_day(ms.div_euclid(MS_PER_DAY)))
}

/// What a point covers, for its tooltip: `2026-12-03` or `2026-12-03 09:00–10:00 UTC`.
fn bucket_label(p: &TimelinePoint) -> String {
    match p.bucket {
        Bucket::Day => p.date.clone(),
        Bucket::Hour => {
            let next = (p.start_ms.rem_euclid(MS_PER_DAY) / MS_PER_HOUR + 1) % 24;
            format!("{}–{next:02}:00 UTC", hour_label(p.start_ms))
        }
    }
}

/// An arm's outcomes naming a model version they had not named before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelMarker {
    /// The arm.
    pub arm: String,
    /// The new model version.
    pub model_version: String,
    /// When it was first seen (Unix ms).
    pub at_ms: i64,
}

/// The caption of [`timeline`]: what a point is, and the markers the chart really draws.
pub fn timeline_caption(
    points: &[TimelinePoint],
    epochs: &[EpochEntry],
    drift: &[DriftEntry],
    models: &[ModelMarker],
    metric: &str,
) -> String {
    let hourly = points.iter().filter(|p| p.bucket == Bucket::Hour).count();
    let mut caption = if hourly == points.len() {
        format!("Hourly mean of {metric} per arm (UTC).")
    } else if hourly == 0 {
        format!("Daily mean of {metric} per arm (UTC).")
    } else {
        format!(
            "Mean of {metric} per arm by UTC day, and by the hour in epochs with under {} hours of data.",
            HOURLY_SPAN_HOURS
        )
    };
    let axis = TimeAxis::new(points);
    let boundaries = epochs
        .iter()
        .any(|e| e.epoch > 0 && axis.place(e.started_at_ms).is_some());
    let detections = drift.iter().any(|d| axis.place(d.detected_at_ms).is_some());
    match (boundaries, detections) {
        (true, true) => caption.push_str(
            " Dashed verticals start new analysis epochs; triangles mark drift detections.",
        ),
        (true, false) => caption.push_str(" Dashed verticals start new analysis epochs."),
        (false, true) => caption.push_str(" Triangles mark drift detections."),
        (false, false) => {}
    }
    if models.iter().any(|m| axis.place(m.at_ms).is_some()) {
        caption.push_str(" Diamonds mark an arm's change of model version.");
    }
    caption
}

/// The primary metric's mean per arm and hour or day over every epoch, with epoch boundaries
/// and drift markers.
///
/// The axis is hourly when every point is (a short history), daily otherwise; the legend
/// shows an arm's line style only when a line of it is drawn (two points or more in one
/// epoch), else its dot.
pub fn timeline(
    points: &[TimelinePoint],
    arms: &[String],
    epochs: &[EpochEntry],
    drift: &[DriftEntry],
    models: &[ModelMarker],
    metric: &str,
) -> Markup {
    if points.is_empty() {
        return html! { p.meta { "No data over time yet." } };
    }
    let (w, h, l, r, t, b) = (760.0, 300.0, 64.0, 20.0, 24.0, 64.0);
    let axis = TimeAxis::new(points);
    let y0 = points.iter().map(|p| p.mean).fold(f64::INFINITY, f64::min);
    let y1 = points
        .iter()
        .map(|p| p.mean)
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((y1 - y0) * 0.08).max(y1.abs() * 0.02).max(1e-9);
    let sx = Scale::new(fms(axis.first), fms(axis.last), l, w - r);
    let sy = Scale::new(y0 - pad, y1 + pad, h - b, t);
    let series: Vec<(usize, u64, Vec<&TimelinePoint>)> = arms
        .iter()
        .enumerate()
        .flat_map(|(i, arm)| {
            epochs.iter().map(move |e| {
                let pts: Vec<&TimelinePoint> = points
                    .iter()
                    .filter(|p| &p.arm == arm && p.epoch == e.epoch)
                    .collect();
                (i, e.epoch, pts)
            })
        })
        .filter(|(_, _, pts)| !pts.is_empty())
        .collect();
    // The legend: each charted arm, with a line when one of its series is a line.
    let legend: Vec<(usize, &String, bool)> = arms
        .iter()
        .enumerate()
        .filter_map(|(i, arm)| {
            let mut own = series.iter().filter(|(j, _, _)| *j == i).peekable();
            own.peek()?;
            Some((i, arm, own.any(|(_, _, pts)| pts.len() > 1)))
        })
        .collect();
    let boundaries: Vec<(&EpochEntry, i64)> = epochs
        .iter()
        .filter(|e| e.epoch > 0)
        .filter_map(|e| Some((e, axis.place(e.started_at_ms)?)))
        .collect();
    let detections: Vec<(&DriftEntry, i64)> = drift
        .iter()
        .filter_map(|d| Some((d, axis.place(d.detected_at_ms)?)))
        .collect();
    let model_marks: Vec<(&ModelMarker, i64)> = models
        .iter()
        .filter_map(|m| Some((m, axis.place(m.at_ms)?)))
        .collect();
    let ticks_x: Vec<(f64, String)> = axis
        .hour_ticks()
        .into_iter()
        .map(|ms| (sx.at(fms(ms)), ms))
        .filter(|(x, _)| l + 110.0 <= *x && *x <= w - r - 110.0)
        .map(|(x, ms)| {
            let label = if ms.rem_euclid(MS_PER_DAY) == 0 {
                format_day(ms.div_euclid(MS_PER_DAY))
            } else {
                format!("{:02}:00", ms.rem_euclid(MS_PER_DAY) / MS_PER_HOUR)
            };
            (x, label)
        })
        .collect();
    let what = if axis.hourly() { "Hourly" } else { "Daily" };
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {w} {h}")) width=(w) height=(h)
            role="img" aria-label=(format!("{what} mean of {metric} per arm")) {
            @for v in ticks(y0 - pad, y1 + pad, 4) {
                line x1=(c(l)) x2=(c(w - r)) y1=(c(sy.at(v))) y2=(c(sy.at(v))) stroke="#e4e4e4" {}
                text x=(c(l - 6.0)) y=(c(sy.at(v) + 4.0)) font-size="11" text-anchor="end" fill="#595959" { (number(v)) }
            }
            line x1=(c(l)) x2=(c(w - r)) y1=(c(h - b)) y2=(c(h - b)) stroke="#1b1b1b" {}
            text x=(c(l)) y=(c(h - b + 16.0)) font-size="11" fill="#595959" { (axis.label(axis.first)) }
            @if axis.last > axis.first {
                text x=(c(w - r)) y=(c(h - b + 16.0)) font-size="11" text-anchor="end" fill="#595959" { (axis.label(axis.last)) }
            }
            @for (x, label) in &ticks_x {
                line x1=(c(*x)) x2=(c(*x)) y1=(c(h - b)) y2=(c(h - b + 4.0)) stroke="#1b1b1b" {}
                text x=(c(*x)) y=(c(h - b + 16.0)) font-size="11" text-anchor="middle" fill="#595959" { (label) }
            }
            @for (e, at) in &boundaries {
                @let x = sx.at(fms(*at));
                g {
                    title { "epoch " (e.epoch) " started " (e.started_at) ": " (e.reason) }
                    line x1=(c(x)) x2=(c(x)) y1=(c(t)) y2=(c(h - b)) stroke="#595959" stroke-dasharray="4 4" {}
                    text x=(c(x + 4.0)) y=(c(t + 10.0)) font-size="11" fill="#595959" { "epoch " (e.epoch) }
                }
            }
            @for (i, _, pts) in &series {
                @if pts.len() > 1 {
                    @let coords = pts.iter().map(|p| format!("{},{}", c(sx.at(fms(p.start_ms))), c(sy.at(p.mean)))).collect::<Vec<_>>().join(" ");
                    polyline points=(coords) fill="none" stroke=(arm_colour(*i)) stroke-width="2" stroke-dasharray=(arm_dash(*i)) {}
                }
                @for p in pts {
                    circle cx=(c(sx.at(fms(p.start_ms)))) cy=(c(sy.at(p.mean))) r="2.5" fill=(arm_colour(*i)) {
                        title { (p.arm) " " (bucket_label(p)) ": " (number(p.mean)) " (n = " (p.n) ")" }
                    }
                }
            }
            @for (d, at) in &detections {
                @let x = sx.at(fms(*at));
                @let tri = match d.direction {
                    ShiftDirection::Up => format!("{},{} {},{} {},{}", c(x - 6.0), c(t + 24.0), c(x + 6.0), c(t + 24.0), c(x), c(t + 14.0)),
                    ShiftDirection::Down => format!("{},{} {},{} {},{}", c(x - 6.0), c(t + 14.0), c(x + 6.0), c(t + 14.0), c(x), c(t + 24.0)),
                };
                polygon points=(tri) fill="#D55E00" {
                    title { "drift: " (d.metric) " went " (d.direction.as_str()) " in " (d.arm) " at " (d.detected_at) " (" (d.detector.as_str()) ")" }
                }
            }
            @for (m, at) in &model_marks {
                @let x = sx.at(fms(*at));
                @let y = h - b - 8.0;
                polygon points=(format!("{},{} {},{} {},{} {},{}", c(x), c(y - 6.0), c(x + 5.0), c(y), c(x), c(y + 6.0), c(x - 5.0), c(y))) fill="#0072B2" {
                    title { "model: " (m.arm) " now runs " (m.model_version) " (first seen " (liftlab_domain::report::format_ts(m.at_ms)) ")" }
                }
            }
            @for (k, (i, arm, line)) in legend.iter().enumerate() {
                @let x = l + 150.0 * f(k);
                @if *line {
                    line x1=(c(x)) x2=(c(x + 28.0)) y1=(c(h - 22.0)) y2=(c(h - 22.0)) stroke=(arm_colour(*i)) stroke-width="2" stroke-dasharray=(arm_dash(*i)) {}
                } @else {
                    circle cx=(c(x + 14.0)) cy=(c(h - 22.0)) r="3.5" fill=(arm_colour(*i)) {}
                }
                text x=(c(x + 34.0)) y=(c(h - 18.0)) font-size="12" { (arm) }
            }
            @if !detections.is_empty() {
                polygon points=(format!("{},{} {},{} {},{}", c(w - 150.0), c(h - 16.0), c(w - 138.0), c(h - 16.0), c(w - 144.0), c(h - 26.0))) fill="#D55E00" {}
                text x=(c(w - 132.0)) y=(c(h - 18.0)) font-size="12" { "drift detected" }
            }
        }
    }
}

/// Each arm's (start, weight) in one stacked bar, in the arms' order.
fn stacked(entry: &AllocationEntry, arms: &[String]) -> Vec<(f64, f64)> {
    let mut below = 0.0;
    arms.iter()
        .map(|arm| {
            let w = entry.weights.get(arm).copied().unwrap_or(0.0);
            let out = (below, w);
            below += w;
            out
        })
        .collect()
}

/// The allocation history: each period's weights as a stacked bar, over an axis that says what
/// opens a period (`bandit`: each recomputation of the weights; otherwise a spec change of them).
pub fn allocation(entries: &[AllocationEntry], arms: &[String], bandit: bool) -> Markup {
    if entries.is_empty() {
        return html! { p.meta { "No allocation periods recorded." } };
    }
    let axis = if bandit {
        "allocation period (a new one each time the bandit recomputes its weights)"
    } else {
        "allocation period (a new one each time a spec change sets new weights)"
    };
    let (w, h, l, r, t, b) = (760.0, 240.0, 48.0, 20.0, 16.0, 76.0);
    let band = (w - l - r) / f(entries.len());
    let sy = Scale::new(0.0, 1.0, h - b, t);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {w} {h}")) width=(w) height=(h)
            role="img" aria-label="Allocation weights per period" {
            @for v in [0.0, 0.25, 0.5, 0.75, 1.0] {
                text x=(c(l - 6.0)) y=(c(sy.at(v) + 4.0)) font-size="11" text-anchor="end" fill="#595959" { (format!("{:.0}%", v * 100.0)) }
            }
            @for (k, e) in entries.iter().enumerate() {
                @let x = l + band * f(k);
                @let stack = stacked(e, arms);
                g {
                    title {
                        "period " (e.period) " from " (e.opened_at) ": "
                        @for (i, arm) in arms.iter().enumerate() {
                            @if i > 0 { ", " }
                            (arm) " " (format!("{:.1}%", e.weights.get(arm).copied().unwrap_or(0.0) * 100.0))
                            " (" (e.assigned.get(arm).copied().unwrap_or(0)) " units)"
                        }
                    }
                    @for (i, (below, wgt)) in stack.iter().enumerate() {
                        rect x=(c(x + 0.5)) width=(c((band - 1.0).max(0.5))) y=(c(sy.at(below + wgt))) height=(c(sy.at(*below) - sy.at(below + wgt)))
                            fill=(arm_colour(i)) fill-opacity=(if i == 0 { "0.55" } else { "0.9" }) {}
                    }
                }
            }
            text x=(c(l)) y=(c(h - b + 16.0)) font-size="11" fill="#595959" { "period " (entries[0].period) }
            @if let Some(last) = entries.last().filter(|_| entries.len() > 1) {
                text x=(c(w - r)) y=(c(h - b + 16.0)) font-size="11" text-anchor="end" fill="#595959" { "period " (last.period) }
            }
            text x=(c((l + w - r) / 2.0)) y=(c(h - b + 34.0)) font-size="12" text-anchor="middle" fill="#595959" { (axis) }
            @for (i, arm) in arms.iter().enumerate() {
                @let x = l + 150.0 * f(i);
                rect x=(c(x)) y=(c(h - 28.0)) width="14" height="14" fill=(arm_colour(i)) fill-opacity=(if i == 0 { "0.55" } else { "0.9" }) {}
                text x=(c(x + 20.0)) y=(c(h - 17.0)) font-size="12" { (arm) }
            }
        }
    }
}

#[cfg(test)]
mod tests;
