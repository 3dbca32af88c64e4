//! The simulation report as the table a person reads.

use super::*;

pub(super) fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1}%", x * 100.0)
    } else {
        "n/a".to_string()
    }
}

pub(super) fn pct_interval(i: &Interval) -> String {
    format!(
        "{} [{}, {}]",
        pct(i.estimate),
        pct(i.ci_low),
        pct(i.ci_high)
    )
}

pub(super) fn yes_no(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "–",
    }
}

/// The table a person reads.
pub fn render(r: &SimulationReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "scenario {} · experiment {} · seed {}",
        r.scenario, r.experiment, r.seed
    );
    if let Some(d) = &r.description {
        let _ = writeln!(s, "{d}");
    }
    let _ = writeln!(
        s,
        "{} tasks ({} in the experiment), {} outcomes recorded, {:.1} s against {}",
        r.tasks, r.in_experiment, r.outcomes_accepted, r.elapsed_seconds, r.server
    );
    if r.epoch > 0 {
        let _ = writeln!(
            s,
            "liftlab re-baselined: the report covers epoch {}, the tasks from {} on; so does the truth",
            r.epoch, r.truth_from_task
        );
    }
    let _ = writeln!(s, "liftlab says: {}\n", r.verdict);
    let _ = writeln!(
        s,
        "{:<22} {:<14} {:>9}  {:<32} {:>8} {:<13} {:>7}  assessment",
        "metric", "arm", "truth", "reported lift [CI]", "p adj", "verdict", "covers"
    );
    for m in &r.metrics {
        let truth = m
            .truth
            .as_ref()
            .map_or("n/a".to_string(), |t| pct(t.relative));
        let (lift, p, verdict) = match &m.reported {
            Some(rep) => (
                rep.relative
                    .as_ref()
                    .map_or("n/a".to_string(), pct_interval),
                rep.p_value_adjusted
                    .or(rep.p_value)
                    .map_or("n/a".to_string(), |p| format!("{p:.4}")),
                rep.verdict.as_str(),
            ),
            None => ("not reported".to_string(), "–".to_string(), "–"),
        };
        let _ = writeln!(
            s,
            "{:<22} {:<14} {:>9}  {:<32} {:>8} {:<13} {:>7}  {}",
            m.metric,
            m.arm,
            truth,
            lift,
            p,
            verdict,
            yes_no(m.relative_covered),
            m.assessment
        );
    }
    if !r.segments.is_empty() {
        let _ = writeln!(s, "\nprimary metric by segment:");
        let width = r
            .segments
            .iter()
            .map(|g| g.attribute.chars().count() + g.value.chars().count() + 1)
            .max()
            .unwrap_or(0);
        for g in &r.segments {
            let _ = writeln!(
                s,
                "  {:<width$} {:<14} truth {:>8}  reported {:<32} covers {}",
                format!("{}={}", g.attribute, g.value),
                g.arm,
                g.true_relative.map_or("n/a".to_string(), pct),
                g.reported_relative
                    .as_ref()
                    .map_or("n/a".to_string(), pct_interval),
                yes_no(g.covered)
            );
        }
    }
    if let Some(b) = &r.bandit {
        let _ = writeln!(s, "\nbandit on {}:", b.reward);
        let _ = writeln!(
            s,
            "  regret {:.1} vs {:.1} for uniform allocation ({:.0}% of it); the truly best arm served {:.0}% of tasks",
            b.regret,
            b.uniform_regret,
            if b.uniform_regret > 0.0 { b.regret / b.uniform_regret * 100.0 } else { f64::NAN },
            b.best_arm_share * 100.0
        );
        let served: Vec<String> = b.served.iter().map(|(a, n)| format!("{a} {n}")).collect();
        let weights: Vec<String> = b
            .final_weights
            .iter()
            .map(|(a, w)| format!("{a} {:.0}%", w * 100.0))
            .collect();
        let _ = writeln!(
            s,
            "  best arm at the end: {}; served: {}; final weights: {}",
            b.best_arm,
            served.join(", "),
            weights.join(", ")
        );
    }
    if !r.drift.truth.is_empty() || !r.drift.reported.is_empty() {
        let _ = writeln!(s, "\ndrift:");
        for t in &r.drift.truth {
            let _ = writeln!(s, "  truth: {t}");
        }
        if r.drift.reported.is_empty() {
            let _ = writeln!(s, "  liftlab: no drift detected");
        }
        for d in &r.drift.reported {
            let _ = writeln!(s, "  liftlab: {d}");
        }
    }
    s
}
