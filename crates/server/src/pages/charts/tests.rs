//! Tests of the charts: the over-time chart's hourly and daily axes and its legend of only what is drawn, and the allocation chart's axis.

use liftlab_domain::drift::{Detector, ShiftDirection};
use liftlab_domain::report::text::format_day;
use std::collections::BTreeMap;

use liftlab_domain::report::{
    format_ts, AllocationEntry, Bucket, DriftAction, DriftEntry, EpochEntry, TimelinePoint,
};

use super::*;

/// 2026-12-03T00:00:00Z.
const DAY_MS: i64 = 20_790 * 86_400_000;

fn point(bucket: Bucket, start_ms: i64, arm: &str, mean: f64) -> TimelinePoint {
    let day = start_ms.div_euclid(86_400_000);
    TimelinePoint {
        epoch: 0,
        bucket,
        start: format_ts(start_ms),
        start_ms,
        day,
        date: format_day(day),
        arm: arm.into(),
        n: 10,
        mean,
    }
}

fn hour(h: i64) -> i64 {
    DAY_MS + h * 3_600_000
}

fn epoch0() -> Vec<EpochEntry> {
    vec![EpochEntry {
        epoch: 0,
        reason: "created".into(),
        started_at: format_ts(DAY_MS),
        started_at_ms: DAY_MS,
        version: 1,
        current: true,
    }]
}

fn arms() -> Vec<String> {
    vec!["human".into(), "ai".into()]
}

fn render(points: &[TimelinePoint], epochs: &[EpochEntry], drift: &[DriftEntry]) -> String {
    timeline(points, &arms(), epochs, drift, &[], "minutes").into_string()
}

/// The legend's part of the chart (it follows the drift markers, at the bottom).
fn legend_of(svg: &str) -> &str {
    let y = r#"y1="278.0""#;
    svg.find(y).map_or("", |i| &svg[i.saturating_sub(60)..])
}

#[test]
fn a_day_of_data_is_drawn_by_the_hour_with_hour_labels() {
    let points: Vec<TimelinePoint> = [(9, 30.0, 24.0), (10, 31.0, 23.0), (15, 29.0, 25.0)]
        .into_iter()
        .flat_map(|(h, human, ai)| {
            [
                point(Bucket::Hour, hour(h), "human", human),
                point(Bucket::Hour, hour(h), "ai", ai),
            ]
        })
        .collect();
    let svg = render(&points, &epoch0(), &[]);
    assert!(
        svg.contains(r#"aria-label="Hourly mean of minutes per arm""#),
        "{svg}"
    );
    // The ends say date and hour; a tick between them says the hour.
    assert!(svg.contains(">2026-12-03 09:00</text>"), "{svg}");
    assert!(svg.contains(">2026-12-03 15:00</text>"), "{svg}");
    assert!(svg.contains(">12:00</text>"), "{svg}");
    assert!(
        svg.contains("ai 2026-12-03 10:00–11:00 UTC: 23 (n = 10)"),
        "{svg}"
    );
    assert_eq!(svg.matches("<polyline").count(), 2, "one line per arm");
    // Both arms' line styles are drawn, so the legend shows them.
    let legend = legend_of(&svg);
    assert!(legend.contains(r#"stroke-dasharray="7 4""#), "{legend}");
    assert_eq!(
        timeline_caption(&points, &epoch0(), &[], &[], "minutes"),
        "Hourly mean of minutes per arm (UTC)."
    );
}

#[test]
fn single_points_get_dots_in_the_legend_not_lines_never_drawn() {
    let points = vec![
        point(Bucket::Hour, hour(9), "human", 30.0),
        point(Bucket::Hour, hour(9), "ai", 24.0),
    ];
    let svg = render(&points, &epoch0(), &[]);
    assert!(!svg.contains("<polyline"), "{svg}");
    assert!(
        !svg.contains("stroke-dasharray=\"7 4\""),
        "no dashed line anywhere: {svg}"
    );
    assert_eq!(
        svg.matches("<circle").count(),
        4,
        "two points, two legend dots"
    );
    assert!(svg.contains(">2026-12-03 09:00</text>"), "{svg}");
}

#[test]
fn an_arm_without_data_is_left_out_of_the_legend() {
    let points = vec![
        point(Bucket::Day, DAY_MS, "human", 30.0),
        point(Bucket::Day, DAY_MS + 86_400_000, "human", 31.0),
    ];
    let svg = render(&points, &epoch0(), &[]);
    assert!(svg.contains(">human</text>"), "{svg}");
    assert!(!svg.contains(">ai</text>"), "{svg}");
}

#[test]
fn a_long_history_is_drawn_by_the_day_with_date_labels() {
    let points: Vec<TimelinePoint> = (0..10)
        .map(|d| {
            point(
                Bucket::Day,
                DAY_MS + d * 86_400_000,
                "human",
                if d % 2 == 0 { 30.0 } else { 31.0 },
            )
        })
        .collect();
    let drift = vec![DriftEntry {
        metric: "minutes".into(),
        arm: "human".into(),
        detected_at: format_ts(DAY_MS + 3 * 86_400_000 + 5_000),
        detected_at_ms: DAY_MS + 3 * 86_400_000 + 5_000,
        direction: ShiftDirection::Up,
        detector: Detector::Cusum,
        action: DriftAction::RebaselineProposed,
    }];
    let svg = render(&points, &epoch0(), &drift);
    assert!(
        svg.contains(r#"aria-label="Daily mean of minutes per arm""#),
        "{svg}"
    );
    assert!(
        svg.contains(">2026-12-03</text>") && svg.contains(">2026-12-12</text>"),
        "{svg}"
    );
    assert!(!svg.contains(":00</text>"), "no hour labels: {svg}");
    assert!(svg.contains(">drift detected</text>"), "{svg}");
    assert_eq!(
        timeline_caption(&points, &epoch0(), &drift, &[], "minutes"),
        "Daily mean of minutes per arm (UTC). Triangles mark drift detections."
    );
}

#[test]
fn markers_outside_the_chart_are_neither_drawn_nor_in_legend_or_caption() {
    let points = vec![
        point(Bucket::Hour, hour(9), "human", 30.0),
        point(Bucket::Hour, hour(11), "human", 31.0),
    ];
    let mut epochs = epoch0();
    epochs.push(EpochEntry {
        epoch: 1,
        reason: "drift".into(),
        started_at: format_ts(hour(30)),
        started_at_ms: hour(30),
        version: 2,
        current: false,
    });
    let drift = vec![DriftEntry {
        metric: "minutes".into(),
        arm: "human".into(),
        detected_at: format_ts(hour(29)),
        detected_at_ms: hour(29),
        direction: ShiftDirection::Down,
        detector: Detector::Window,
        action: DriftAction::Rebaselined,
    }];
    let svg = render(&points, &epochs, &drift);
    assert!(!svg.contains("drift detected"), "{svg}");
    assert!(!svg.contains("epoch 1"), "{svg}");
    assert_eq!(
        timeline_caption(&points, &epochs, &drift, &[], "minutes"),
        "Hourly mean of minutes per arm (UTC)."
    );
    // Within the chart, an epoch boundary is drawn at its hour and named in the caption.
    epochs[1].started_at_ms = hour(10) + 60_000;
    let svg = render(&points, &epochs, &[]);
    assert!(svg.contains(">epoch 1</text>"), "{svg}");
    assert_eq!(
        timeline_caption(&points, &epochs, &[], &[], "minutes"),
        "Hourly mean of minutes per arm (UTC). Dashed verticals start new analysis epochs."
    );
}

#[test]
fn a_history_of_daily_and_hourly_epochs_is_captioned_as_both() {
    let mut points = vec![
        point(Bucket::Day, DAY_MS, "human", 30.0),
        point(Bucket::Day, DAY_MS + 86_400_000 * 5, "human", 31.0),
    ];
    let mut late = point(
        Bucket::Hour,
        DAY_MS + 86_400_000 * 6 + 3_600_000,
        "human",
        29.0,
    );
    late.epoch = 1;
    points.push(late);
    let svg = render(&points, &epoch0(), &[]);
    assert!(
        svg.contains(r#"aria-label="Daily mean of minutes per arm""#),
        "{svg}"
    );
    assert_eq!(
        timeline_caption(&points, &epoch0(), &[], &[], "minutes"),
        "Mean of minutes per arm by UTC day, and by the hour in epochs with under 72 hours of data."
    );
}

#[test]
fn hour_ticks_are_round_and_at_most_about_six() {
    let axis = |first: i64, last: i64| TimeAxis {
        unit: MS_PER_HOUR,
        first: hour(first),
        last: hour(last),
    };
    let hours = |ticks: Vec<i64>| -> Vec<i64> {
        ticks
            .into_iter()
            .map(|t| (t - DAY_MS) / MS_PER_HOUR)
            .collect()
    };
    assert_eq!(hours(axis(9, 15).hour_ticks()), vec![10, 11, 12, 13, 14]);
    assert_eq!(hours(axis(9, 33).hour_ticks()), vec![12, 18, 24, 30]);
    assert_eq!(hours(axis(0, 71).hour_ticks()), vec![12, 24, 36, 48, 60]);
    assert!(axis(9, 9).hour_ticks().is_empty());
    let daily = TimeAxis {
        unit: MS_PER_DAY,
        first: DAY_MS,
        last: DAY_MS + 86_400_000,
    };
    assert!(daily.hour_ticks().is_empty());
}

#[test]
fn the_allocation_axis_says_what_opens_a_period() {
    let entries: Vec<AllocationEntry> = (0..3u64)
        .map(|period| AllocationEntry {
            period,
            opened_at: format_ts(hour(9) + 3_600_000 * i64::try_from(period).expect("small")),
            opened_at_ms: hour(9),
            weights: BTreeMap::from([("human".into(), 0.5), ("ai".into(), 0.5)]),
            assigned: BTreeMap::from([("human".into(), 10), ("ai".into(), 10)]),
            srm: None,
        })
        .collect();
    let bandit = allocation(&entries, &arms(), true).into_string();
    assert!(
        bandit.contains(
            ">allocation period (a new one each time the bandit recomputes its weights)</text>"
        ),
        "{bandit}"
    );
    assert!(bandit.contains(">period 0</text>") && bandit.contains(">period 2</text>"));
    let fixed = allocation(&entries, &arms(), false).into_string();
    assert!(
        fixed.contains(
            ">allocation period (a new one each time a spec change sets new weights)</text>"
        ),
        "{fixed}"
    );
}

#[test]
fn a_model_version_change_is_marked_with_its_arm_version_and_time() {
    let points: Vec<TimelinePoint> = (9..=15)
        .flat_map(|h| {
            [
                point(Bucket::Hour, hour(h), "human", 30.0),
                point(Bucket::Hour, hour(h), "ai", 24.0),
            ]
        })
        .collect();
    let models = [
        ModelMarker {
            arm: "ai".into(),
            model_version: "gpt-2027-01".into(),
            at_ms: hour(12),
        },
        // Outside the charted span: neither drawn nor captioned on its own.
        ModelMarker {
            arm: "ai".into(),
            model_version: "later".into(),
            at_ms: hour(40),
        },
    ];
    let svg = timeline(&points, &arms(), &epoch0(), &[], &models, "minutes").into_string();
    assert!(
        svg.contains("model: ai now runs gpt-2027-01 (first seen 2026-12-03T12:00:00Z)"),
        "{svg}"
    );
    assert!(!svg.contains("later"), "{svg}");
    assert!(
        timeline_caption(&points, &epoch0(), &[], &models, "minutes")
            .ends_with(" Diamonds mark an arm's change of model version.")
    );
    assert!(
        !timeline_caption(&points, &epoch0(), &[], &models[1..], "minutes").contains("Diamonds")
    );
}
