//! Snapshot tests of the rendered pages, plus checks that they escape input, carry no script and put warnings first.

use std::collections::BTreeMap;

use expect_test::expect_file;
use liftlab_domain::lifecycle::Transition;
use liftlab_domain::model::{AggDelta, AggKey, AggScope, AllocationPeriod, MetricAggregate};
use liftlab_domain::report::{self, EpochInfo, PeriodCount, ReportInput};
use liftlab_domain::{ExperimentSpec, ExperimentVersion};
use liftlab_testkit::spec::{support_desk, with};
use serde_json::json;

use super::*;

fn spec(hypothesis: &str, extra: serde_json::Value) -> ExperimentSpec {
    let doc = with(
        support_desk(),
        json!({
            "hypothesis": hypothesis,
            "owner": "support-ops",
            "roi": {"volume_per_month": 12000, "human_cost_per_hour": 45}
        }),
    );
    ExperimentSpec::parse(&with(doc, extra)).expect("valid spec")
}

/// A deterministic sequence in [0, 1) (a linear congruential generator), so snapshots are stable.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.next().max(1e-12), self.next());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

const DAY0: i64 = 20_513; // 2026-03-01.

/// Aggregates of two epochs of support-desk data: overall, per region and per day.
fn aggregates() -> Vec<(AggKey, MetricAggregate)> {
    let mut rng = Lcg(42);
    let mut map: BTreeMap<AggKey, MetricAggregate> = BTreeMap::new();
    let regions = ["emea", "amer", "apac"];
    for epoch in 0..2u64 {
        for (arm, minutes, esc, cost) in
            [("human", 30.0, 0.12, 6.0), ("ai_assist", 24.5, 0.11, 4.2)]
        {
            for i in 0..240usize {
                let day = DAY0
                    + 7 * i64::try_from(epoch).expect("small")
                    + i64::try_from(i % 7).expect("small");
                let values = [
                    ("cycle_time", (minutes + 7.0 * rng.normal()).max(1.0)),
                    ("escalated", if rng.next() < esc { 1.0 } else { 0.0 }),
                    ("cost", (cost + 1.2 * rng.normal()).max(0.0)),
                ];
                for (metric, v) in values {
                    for scope in [
                        AggScope::Overall,
                        AggScope::Segment {
                            attribute: "region".into(),
                            value: regions[i % 3].into(),
                        },
                        AggScope::Day(day),
                    ] {
                        let key = AggKey {
                            epoch,
                            arm: arm.into(),
                            metric: metric.into(),
                            scope,
                        };
                        map.entry(key.clone()).or_default().apply(&AggDelta {
                            key,
                            old: None,
                            new: v,
                            propensity: 0.5,
                        });
                    }
                }
            }
        }
    }
    map.into_iter().collect()
}

fn page(version: ExperimentVersion, pause_reason: Option<&str>) -> ExperimentPage {
    let aggregates = aggregates();
    let epochs = vec![
        EpochInfo {
            epoch: 0,
            reason: "created".into(),
            started_at: DAY0 * 86_400_000,
            version: 1,
        },
        EpochInfo {
            epoch: 1,
            reason: "drift: cycle_time went down in arm ai_assist".into(),
            started_at: (DAY0 + 7) * 86_400_000,
            version: 3,
        },
    ];
    let assignments = vec![
        PeriodCount {
            period: 0,
            arm: "human".into(),
            count: 250,
        },
        PeriodCount {
            period: 0,
            arm: "ai_assist".into(),
            count: 246,
        },
    ];
    let tallies = vec![
        report::ArmTally {
            arm: "human".into(),
            units: 240,
            outcomes: 240,
            handled_by: BTreeMap::new(),
        },
        report::ArmTally {
            arm: "ai_assist".into(),
            units: 240,
            outcomes: 240,
            handled_by: BTreeMap::from([
                (liftlab_domain::HandledBy::Ai, 180),
                (liftlab_domain::HandledBy::Human, 60),
            ]),
        },
    ];
    let periods = vec![AllocationPeriod {
        experiment: "support-ai".into(),
        period: 0,
        weights: vec![("human".into(), 0.5), ("ai_assist".into(), 0.5)],
        opened_at: DAY0 * 86_400_000,
        rewards_seen: 0,
    }];
    let report = report::build(&ReportInput {
        version: &version,
        epoch: 1,
        aggregates: &aggregates,
        tallies: &tallies,
        assignments: &assignments,
        periods: &periods,
        epochs: &epochs,
        drift: None,
        pause_reason,
    });
    let mut history = Vec::new();
    for e in 0..2 {
        history.extend(report::timeline(&version.spec, e, &aggregates));
    }
    ExperimentPage {
        versions: vec![version.clone()],
        epoch_effects: Vec::new(),
        model_changes: Vec::new(),
        version,
        report,
        history,
    }
}

fn running(spec: ExperimentSpec) -> ExperimentVersion {
    ExperimentVersion::created(spec, DAY0 * 86_400_000)
        .transitioned(Transition::Start, None, DAY0 * 86_400_000 + 60_000)
        .expect("start")
}

/// The page with the stylesheet cut out, for its snapshot: every page carries the same `CSS`
/// once, so the snapshots hold what differs between pages.
fn without_stylesheet(html: &str) -> String {
    assert_eq!(
        html.matches(CSS).count(),
        1,
        "the page carries the stylesheet once"
    );
    html.replacen(CSS, "/* pages::CSS */", 1)
}

#[test]
fn experiment_page_snapshot() {
    let version = running(spec(
        "AI drafts cut cycle time without more escalations",
        json!({"analysis": {"sequential": false, "planned_units": 480}}),
    ));
    let html = render_experiment(&page(version, None)).into_string();
    expect_file!["snapshots/experiment.html"].assert_eq(&without_stylesheet(&html));
}

#[test]
fn index_page_snapshot() {
    let version = running(spec("AI drafts cut cycle time", json!({})));
    let p = page(version.clone(), None);
    let rows = vec![IndexRow {
        version,
        report: p.report,
        updated_at: DAY0 * 86_400_000 + 60_000,
        last_data: Some("2026-03-14".into()),
    }];
    let html = render_index(&rows).into_string();
    expect_file!["snapshots/index.html"].assert_eq(&without_stylesheet(&html));
    assert!(render_index(&[])
        .into_string()
        .contains("No experiments yet"));
}

#[test]
fn pages_escape_user_text_and_carry_no_script() {
    let version = running(spec("<script>alert('x')</script> & \"quotes\"", json!({})));
    let html = render_experiment(&page(version, None)).into_string();
    assert!(
        !html.contains("<script"),
        "no script element, escaped or not"
    );
    assert!(html.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; &quot;quotes&quot;"));
}

#[test]
fn a_paused_experiment_shows_why_above_the_verdict() {
    let version = running(spec("h", json!({})))
        .transitioned(
            Transition::Pause,
            Some("guardrail escalated is worse".into()),
            DAY0 * 86_400_000 + 120_000,
        )
        .expect("pause");
    let html =
        render_experiment(&page(version, Some("guardrail escalated is worse"))).into_string();
    let warning = html
        .find("The experiment is paused: guardrail escalated is worse.")
        .expect("pause warning");
    let verdict = html.find("class=\"verdict\"").expect("verdict");
    assert!(warning < verdict, "the pause is shown first");
}

#[test]
fn the_page_plots_every_comparison_and_both_epochs() {
    let version = running(spec("h", json!({})));
    let p = page(version, None);
    let html = render_experiment(&p).into_string();
    // One forest row (a <g> with a <title>) per metric comparison.
    for m in &p.report.metrics {
        assert!(
            html.contains(&format!("<title>{}: ", report::text::humanize(&m.key))),
            "{}",
            m.key
        );
    }
    assert!(html.contains("epoch 1"), "the epoch boundary is drawn");
    assert!(p.history.iter().any(|t| t.epoch == 0) && p.history.iter().any(|t| t.epoch == 1));
    assert!(
        html.contains("#E69F00") && html.contains("#000000"),
        "Okabe–Ito arm colours"
    );
    assert!(html.contains("@media print"));
}

#[test]
fn handled_by_ai_cards_appear_only_when_outcomes_said_ai_handled_them() {
    let cards = |coverage: &[(&str, f64)]| {
        let mut p = page(running(spec("h", json!({}))), None);
        let roi = p.report.roi.as_mut().expect("the spec has ROI settings");
        roi.automation_coverage = coverage.iter().map(|(a, s)| (a.to_string(), *s)).collect();
        let html = render_experiment(&p).into_string();
        html.match_indices("Handled by AI (")
            .map(|(i, _)| html[i..].split(')').next().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    // No outcome said who handled it.
    assert!(cards(&[]).is_empty());
    // Outcomes said human or hybrid, never AI: no card reading 0.0%.
    assert!(cards(&[("human", 0.0), ("ai_assist", 0.0)]).is_empty());
    // Some said AI: a card for every arm whose outcomes said who handled them.
    assert_eq!(
        cards(&[("human", 0.0), ("ai_assist", 0.75)]),
        vec!["Handled by AI (ai_assist", "Handled by AI (human"]
    );
}

/// The page of `version` before any unit was assigned.
fn empty_page(version: ExperimentVersion) -> ExperimentPage {
    let epochs = vec![EpochInfo {
        epoch: 0,
        reason: "created".into(),
        started_at: DAY0 * 86_400_000,
        version: 1,
    }];
    let periods = vec![AllocationPeriod {
        experiment: "support-ai".into(),
        period: 0,
        weights: vec![("human".into(), 0.5), ("ai_assist".into(), 0.5)],
        opened_at: DAY0 * 86_400_000,
        rewards_seen: 0,
    }];
    let report = report::build(&ReportInput {
        version: &version,
        epoch: 0,
        aggregates: &[],
        tallies: &[],
        assignments: &[],
        periods: &periods,
        epochs: &epochs,
        drift: None,
        pause_reason: None,
    });
    ExperimentPage {
        versions: vec![version.clone()],
        epoch_effects: Vec::new(),
        model_changes: Vec::new(),
        version,
        report,
        history: Vec::new(),
    }
}

fn draft(spec: ExperimentSpec) -> ExperimentVersion {
    ExperimentVersion::created(spec, DAY0 * 86_400_000)
}

#[test]
fn the_page_of_a_draft_with_no_data_says_not_started_and_shows_nothing_green() {
    let html = render_experiment(&empty_page(draft(spec("h", json!({}))))).into_string();
    expect_file!["snapshots/experiment-draft-empty.html"].assert_eq(&without_stylesheet(&html));
}

#[test]
fn the_page_of_a_running_experiment_with_no_data_shows_nothing_green() {
    let html = render_experiment(&empty_page(running(spec("h", json!({}))))).into_string();
    expect_file!["snapshots/experiment-running-empty.html"].assert_eq(&without_stylesheet(&html));
}

#[test]
fn the_index_of_experiments_with_no_data_says_not_started_or_collecting() {
    let rows: Vec<IndexRow> = [draft(spec("h", json!({}))), running(spec("h", json!({})))]
        .into_iter()
        .map(|version| IndexRow {
            report: empty_page(version.clone()).report,
            updated_at: version.created_at,
            version,
            last_data: None,
        })
        .collect();
    let html = render_index(&rows).into_string();
    expect_file!["snapshots/index-empty.html"].assert_eq(&without_stylesheet(&html));
}
