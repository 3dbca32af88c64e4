//! Tests of the scenario format: parsing, validation problems, draws and the exact truth.

use super::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn spec() -> Value {
    serde_json::json!({
        "key": "triage",
        "arms": [
            {"key": "human", "role": "baseline"},
            {"key": "ai", "role": "treatment"}
        ],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai": 0.5}},
        "metrics": [
            {"key": "cycle_time", "kind": "duration", "direction": "decrease", "role": "primary"},
            {"key": "escalated", "kind": "binary", "direction": "decrease", "role": "guardrail"},
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary"}
        ]
    })
}

fn scenario(extra: Value) -> anyhow::Result<Scenario> {
    let mut doc = serde_json::json!({
        "spec": spec(),
        "tasks": 1000,
        "human_cost_per_hour": 60.0,
        "arms": {
            "human": {"cycle_time": {"lognormal": {"median": 40.0, "sigma": 0.5}}, "escalation": 0.1},
            "ai": {
                "cycle_time": {"lognormal": {"median": 30.0, "sigma": 0.5}},
                "escalation": 0.08,
                "ai_cost": {"exponential": {"mean": 0.05}},
                "handled_by": {"ai": 0.5, "hybrid": 0.5}
            }
        }
    });
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    Scenario::parse(&doc, Path::new("."), "test")
}

/// The empirical mean of many draws, for checking the analytic truth.
fn empirical(
    s: &Scenario,
    arm: &str,
    metric: &str,
    from: usize,
    to: usize,
    draws_per_task: usize,
) -> f64 {
    let mut rng = StdRng::seed_from_u64(7);
    let mut sum = 0.0;
    let mut n = 0.0;
    for index in from..to {
        for _ in 0..draws_per_task {
            let attributes = s.draw_attributes(&mut rng, index);
            let draw = s.draw(&mut rng, index, arm, &attributes).expect("draw");
            let value = draw
                .metrics
                .iter()
                .find(|(k, _)| k == metric)
                .expect("metric")
                .1;
            sum += value;
            n += 1.0;
        }
    }
    sum / n
}

fn close(a: f64, b: f64, relative: f64) -> bool {
    (a - b).abs() <= relative * b.abs()
}

#[test]
fn lognormal_mean_is_median_times_exp_half_sigma_squared() {
    // A log-normal with median 1 and sigma 1 has mean e^0.5 = 1.6487212707 (scipy.stats.lognorm(1).mean()).
    let d = Dist::Lognormal {
        median: 1.0,
        sigma: 1.0,
    };
    assert!((d.mean() - 1.648_721_270_7).abs() < 1e-9);
}

#[test]
fn truth_matches_the_empirical_mean_of_draws() {
    let s = scenario(serde_json::json!({})).expect("valid");
    for (arm, metric) in [
        ("human", "cycle_time"),
        ("ai", "cycle_time"),
        ("ai", "escalated"),
        ("ai", "cost"),
        ("human", "cost"),
    ] {
        let q = s.quantity_of(metric).expect("mapped");
        let truth = s.truth(arm, &q, 0, 1000, None).expect("truth");
        let seen = empirical(&s, arm, metric, 0, 1000, 40);
        assert!(
            close(seen, truth, 0.02),
            "{arm}/{metric}: empirical {seen} vs truth {truth}"
        );
    }
}

#[test]
fn truth_follows_segments_drift_and_mix_changes() {
    let s = scenario(serde_json::json!({
            "segments": [{
                "attribute": "region",
                "mix": {"emea": 0.3, "amer": 0.7},
                "effects": {"emea": {"ai": {"cycle_time": 1.5}}}
            }],
            "drift": [{"at_task": 600, "arm": "ai", "multiply": {"escalation": 2.0}, "model_version": "m2"}],
            "mix_changes": [{"at_task": 400, "attribute": "region", "mix": {"emea": 0.8, "amer": 0.2}}]
        }))
        .expect("valid");
    let ct = &Quantity::CycleTime;
    let overall = s.truth("ai", ct, 0, 1000, None).expect("truth");
    let seen = empirical(&s, "ai", "cycle_time", 0, 1000, 40);
    assert!(
        close(seen, overall, 0.02),
        "empirical {seen} vs truth {overall}"
    );
    // Within a segment the mix does not matter, only the segment's effect.
    let base = Dist::Lognormal {
        median: 30.0,
        sigma: 0.5,
    }
    .mean();
    let emea = s
        .truth("ai", ct, 0, 1000, Some(("region", "emea")))
        .expect("truth");
    assert!(close(emea, 1.5 * base, 1e-12));
    let esc_before = s
        .truth("ai", &Quantity::Escalated, 0, 600, None)
        .expect("truth");
    let esc_after = s
        .truth("ai", &Quantity::Escalated, 600, 1000, None)
        .expect("truth");
    assert!(close(esc_before, 0.08, 1e-12) && close(esc_after, 0.16, 1e-12));
    let mut rng = StdRng::seed_from_u64(1);
    let attrs = s.draw_attributes(&mut rng, 700);
    assert_eq!(
        s.draw(&mut rng, 700, "ai", &attrs)
            .expect("draw")
            .model_version
            .as_deref(),
        Some("m2")
    );
    assert_eq!(
        s.draw(&mut rng, 10, "ai", &attrs)
            .expect("draw")
            .model_version,
        None
    );
}

#[test]
fn bad_scenarios_list_every_problem_with_its_pointer() {
    let err = scenario(serde_json::json!({
        "tasks": 0,
        "arms": {"human": {"escalation": 1.5}, "robot": {}},
        "segments": [{"attribute": "region", "mix": {"emea": 0.5}}],
        "surprise": true
    }))
    .expect_err("invalid");
    let text = format!("{err:#}");
    for needle in [
        "/tasks",
        "/arms/robot",
        "/arms/human/escalation",
        "/arms/human: needs cycle_time",
        "/arms/ai: is missing",
        "/segments/0/mix: shares must sum to 1",
        "/surprise: unknown field",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
}

#[test]
fn an_effort_estimate_is_sent_as_a_number_and_scales_cycle_time_with_mean_one() {
    let s = scenario(serde_json::json!({
        "effort": {"attribute": "estimated_minutes", "mean": 40.0, "sigma": 0.6}
    }))
    .expect("valid");
    let mut rng = StdRng::seed_from_u64(3);
    let attributes = s.draw_attributes(&mut rng, 0);
    let estimate: f64 = attributes["estimated_minutes"].parse().expect("a number");
    assert_eq!(
        s.assignment_attributes(&attributes)["estimated_minutes"],
        serde_json::json!(estimate)
    );
    // The truth does not change, and the draws still average to it.
    let truth = s
        .truth("ai", &Quantity::CycleTime, 0, 1000, None)
        .expect("truth");
    let base = Dist::Lognormal {
        median: 30.0,
        sigma: 0.5,
    }
    .mean();
    assert!(close(truth, base, 1e-12));
    let seen = empirical(&s, "ai", "cycle_time", 0, 1000, 40);
    assert!(
        close(seen, truth, 0.03),
        "empirical {seen} vs truth {truth}"
    );
    // The estimate predicts the cycle time: their log correlation is clearly positive.
    let mut rng = StdRng::seed_from_u64(5);
    let pairs: Vec<(f64, f64)> = (0..4000)
        .map(|i| {
            let a = s.draw_attributes(&mut rng, i);
            let x: f64 = a["estimated_minutes"].parse().expect("a number");
            let draw = s.draw(&mut rng, i, "ai", &a).expect("draw");
            (x.ln(), draw.metrics[0].1.ln())
        })
        .collect();
    let n = count(pairs.len());
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (sxy, sxx, syy) = pairs.iter().fold((0.0, 0.0, 0.0), |(a, b, c), (x, y)| {
        (
            a + (x - mx) * (y - my),
            b + (x - mx).powi(2),
            c + (y - my).powi(2),
        )
    });
    // In logs, the correlation is 0.6 / sqrt(0.6² + 0.5²) ≈ 0.77.
    let r = sxy / (sxx * syy).sqrt();
    assert!((r - 0.768).abs() < 0.03, "correlation {r}");

    let err = scenario(serde_json::json!({"effort": {"attribute": "", "mean": -1}}))
        .expect_err("invalid");
    assert!(format!("{err:#}").contains("/effort/attribute"), "{err:#}");
}

#[test]
fn ratio_metrics_are_never_fed() {
    let mut spec = spec();
    spec["metrics"]
        .as_array_mut()
        .expect("metrics")
        .push(serde_json::json!({
            "key": "cost_per_minute", "kind": "cost", "direction": "decrease",
            "role": "secondary", "ratio": {"numerator": "cost", "denominator": "cycle_time"}
        }));
    let s = scenario(serde_json::json!({"spec": spec.clone()})).expect("valid");
    assert_eq!(s.quantity_of("cost_per_minute"), None);
    let mut rng = StdRng::seed_from_u64(1);
    let a = s.draw_attributes(&mut rng, 0);
    let draw = s.draw(&mut rng, 0, "ai", &a).expect("draw");
    assert!(draw.metrics.iter().all(|(k, _)| k != "cost_per_minute"));
    let err = scenario(serde_json::json!({"spec": spec, "metrics": {"cost_per_minute": "cost"}}))
        .expect_err("a ratio takes no quantity");
    assert!(
        format!("{err:#}").contains("/metrics/cost_per_minute"),
        "{err:#}"
    );
}

#[test]
fn metrics_default_to_quantities_by_kind() {
    let s = scenario(serde_json::json!({})).expect("valid");
    assert_eq!(s.quantity_of("cycle_time"), Some(Quantity::CycleTime));
    assert_eq!(s.quantity_of("escalated"), Some(Quantity::Escalated));
    assert_eq!(s.quantity_of("cost"), Some(Quantity::Cost));
    let err = scenario(serde_json::json!({"metrics": {"escalated": "cycle_time"}}))
        .expect_err("kind mismatch");
    assert!(format!("{err:#}").contains("/metrics/escalated"));
}
