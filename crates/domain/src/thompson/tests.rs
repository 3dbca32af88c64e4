//! Tests of the Thompson-sampling state: warm-up and batching, P(best) against a closed form, floors, discounting.

use serde_json::{json, Value};

use super::*;
use crate::model::Status;

fn spec(reward_kind: &str, direction: &str, allocation: Value) -> ExperimentSpec {
    let mut alloc = json!({"policy": "thompson", "reward": "r"});
    for (k, v) in allocation.as_object().expect("object") {
        alloc[k] = v.clone();
    }
    ExperimentSpec::parse(&json!({
        "key": "bandit",
        "arms": [{"key": "a", "role": "baseline"}, {"key": "b", "role": "treatment"}],
        "allocation": alloc,
        "metrics": [{"key": "r", "kind": reward_kind, "direction": direction, "role": "primary"}]
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// ln Γ(n) for a positive integer n, as ln((n − 1)!).
fn ln_gamma_int(n: u32) -> f64 {
    (1..n).map(|k| f64::from(k).ln()).sum()
}

fn ln_beta_int(a: u32, b: u32) -> f64 {
    ln_gamma_int(a) + ln_gamma_int(b) - ln_gamma_int(a + b)
}

/// P(p_B > p_A) for p_A ~ Beta(a_a, b_a) and p_B ~ Beta(a_b, b_b) with integer parameters:
/// the closed form Σ_{i<a_b} B(a_a + i, b_a + b_b) / ((b_b + i) B(1 + i, b_b) B(a_a, b_a)).
fn beta_b_beats_a(a_a: u32, b_a: u32, a_b: u32, b_b: u32) -> f64 {
    (0..a_b)
        .map(|i| {
            (ln_beta_int(a_a + i, b_a + b_b)
                - f64::from(b_b + i).ln()
                - ln_beta_int(1 + i, b_b)
                - ln_beta_int(a_a, b_a))
            .exp()
        })
        .sum()
}

/// Tolerance for P(best) by quadrature against the closed form.
const PROB_TOLERANCE: f64 = 1e-6;

fn feed(state: &mut BanditState, arm: &str, successes: u32, failures: u32) {
    for _ in 0..successes {
        state.observe(arm, 1.0).expect("valid reward");
    }
    for _ in 0..failures {
        state.observe(arm, 0.0).expect("valid reward");
    }
}

#[test]
fn only_thompson_specs_have_a_bandit() {
    let fixed = ExperimentSpec::parse(&json!({
        "key": "f",
        "arms": [{"key": "a", "role": "baseline"}, {"key": "b", "role": "treatment"}],
        "allocation": {"policy": "fixed"},
        "metrics": [{"key": "r", "kind": "binary", "direction": "increase", "role": "primary"}]
    }))
    .expect("valid");
    assert!(BanditState::new(&fixed).is_none());
    let state = BanditState::new(&spec("binary", "increase", json!({}))).expect("thompson");
    assert_eq!(state.model(), RewardModel::Beta);
    assert_eq!(state.reward(), "r");
    assert_eq!(
        BanditState::new(&spec("duration", "decrease", json!({}))).map(|s| s.model()),
        Some(RewardModel::Normal)
    );
}

#[test]
fn bad_rewards_are_refused() {
    let mut state = BanditState::new(&spec("binary", "increase", json!({}))).expect("thompson");
    assert_eq!(
        state.observe("c", 1.0),
        Err(DomainError::UnknownArm("c".into()))
    );
    assert!(matches!(
        state.observe("a", f64::NAN),
        Err(DomainError::InvalidReward { .. })
    ));
    assert!(matches!(
        state.observe("a", 2.0),
        Err(DomainError::InvalidReward { .. })
    ));
    let mut normal =
        BanditState::new(&spec("continuous", "increase", json!({}))).expect("thompson");
    assert!(normal.observe("a", -40.0).is_ok());
    assert!(matches!(
        normal.observe("a", f64::INFINITY),
        Err(DomainError::InvalidReward { .. })
    ));
    assert_eq!((state.total(), normal.total()), (0, 1));
}

#[test]
fn recomputation_waits_for_the_warmup_then_batches() {
    let spec = spec(
        "binary",
        "increase",
        json!({"warmup": 3, "update_every": 4}),
    );
    let mut state = BanditState::new(&spec).expect("thompson");
    feed(&mut state, "a", 2, 3);
    assert!(!state.due(&spec), "arm b has no rewards yet");
    feed(&mut state, "b", 1, 1);
    assert!(!state.due(&spec), "arm b has 2 of 3 warm-up rewards");
    feed(&mut state, "b", 1, 0);
    assert!(state.due(&spec));
    let period = state.recompute(&spec, 1, 77);
    assert_eq!(
        (period.period, period.opened_at, period.rewards_seen),
        (1, 77, 8)
    );
    assert_eq!(state.since_recompute(), 0);
    assert!(!state.due(&spec));
    feed(&mut state, "a", 3, 0);
    assert!(!state.due(&spec));
    feed(&mut state, "b", 0, 1);
    assert!(state.due(&spec));
}

#[test]
fn binary_weights_are_the_probability_of_being_best() {
    let spec = spec(
        "binary",
        "increase",
        json!({"floor": 0.0, "warmup": 0, "update_every": 1}),
    );
    let mut state = BanditState::new(&spec).expect("thompson");
    // a: 3 successes, 7 failures → Beta(4, 8); b: 6 and 4 → Beta(7, 5).
    feed(&mut state, "a", 3, 7);
    feed(&mut state, "b", 6, 4);
    let expected_b = beta_b_beats_a(4, 8, 7, 5);
    let period = state.recompute(&spec, 1, 0);
    assert_eq!(period.weights[0].0, "a");
    assert!(
        (period.weights[1].1 - expected_b).abs() < PROB_TOLERANCE,
        "{period:?} vs {expected_b}"
    );
    assert!((period.weights[0].1 - (1.0 - expected_b)).abs() < PROB_TOLERANCE);
}

#[test]
fn a_decrease_reward_favours_the_lower_rate() {
    let spec = spec(
        "binary",
        "decrease",
        json!({"floor": 0.0, "warmup": 0, "update_every": 1}),
    );
    let mut state = BanditState::new(&spec).expect("thompson");
    feed(&mut state, "a", 3, 7);
    feed(&mut state, "b", 6, 4);
    // P(rate_a < rate_b) = P(b beats a) under the increase reading.
    let expected_a = beta_b_beats_a(4, 8, 7, 5);
    let w = state.recompute(&spec, 1, 0).weights;
    assert!(
        (w[0].1 - expected_a).abs() < PROB_TOLERANCE,
        "{w:?} vs {expected_a}"
    );
}

#[test]
fn the_floor_keeps_every_arm_alive() {
    let spec = spec(
        "binary",
        "increase",
        json!({"floor": 0.1, "warmup": 0, "update_every": 1}),
    );
    let mut state = BanditState::new(&spec).expect("thompson");
    feed(&mut state, "a", 0, 400);
    feed(&mut state, "b", 400, 0);
    let w = state.recompute(&spec, 1, 0).weights;
    // P(b best) ≈ 1, so the floored weights are f + (1 − 2f)·p = 0.1 and 0.9.
    assert!(
        (w[0].1 - 0.1).abs() < 1e-9 && (w[1].1 - 0.9).abs() < 1e-9,
        "{w:?}"
    );
    assert!((w[0].1 + w[1].1 - 1.0).abs() < 1e-12);
}

#[test]
fn normal_rewards_follow_the_means_and_direction() {
    for (direction, winner) in [("increase", 1), ("decrease", 0)] {
        let spec = spec(
            "duration",
            direction,
            json!({"floor": 0.0, "warmup": 0, "update_every": 1}),
        );
        let mut state = BanditState::new(&spec).expect("thompson");
        for i in 0..200 {
            let wobble = f64::from(i % 7) - 3.0;
            state.observe("a", 10.0 + wobble).expect("reward");
            state.observe("b", 12.0 + wobble).expect("reward");
        }
        let w = state.recompute(&spec, 1, 0).weights;
        assert!(w[winner].1 > 0.99, "{direction}: {w:?}");
    }
}

#[test]
fn normal_posterior_matches_its_closed_form() {
    let spec = spec(
        "continuous",
        "increase",
        json!({"floor": 0.0, "warmup": 0, "update_every": 1}),
    );
    let mut state = BanditState::new(&spec).expect("thompson");
    for x in [1.0, 2.0, 3.0, 4.0] {
        state.observe("a", x).expect("reward");
    }
    for x in [2.0, 4.0, 6.0] {
        state.observe("b", x).expect("reward");
    }
    // Pooled over 7 values {1,2,3,4,2,4,6}: mean 22/7; arm a: mean 2.5, variance 5/3; arm b: mean 4, variance 4.
    // Posterior a: N((22/7 + 4·2.5)/5, (5/3)/5); b: N((22/7 + 3·4)/4, 4/4).
    let post = state.normal_posteriors().expect("spread");
    let pooled = 22.0 / 7.0;
    let expected = [
        ((pooled + 10.0) / 5.0, (5.0_f64 / 3.0 / 5.0).sqrt()),
        ((pooled + 12.0) / 4.0, 1.0),
    ];
    for ((m, s), (em, es)) in post.iter().zip(expected) {
        assert!(
            (m - em).abs() < 1e-12 && (s - es).abs() < 1e-12,
            "{post:?} vs {expected:?}"
        );
    }
}

#[test]
fn rewards_without_spread_give_uniform_weights() {
    let spec = spec(
        "continuous",
        "increase",
        json!({"floor": 0.0, "warmup": 0, "update_every": 1}),
    );
    let mut state = BanditState::new(&spec).expect("thompson");
    assert_eq!(state.prob_best(), vec![0.5, 0.5], "no rewards at all");
    for _ in 0..10 {
        state.observe("a", 3.0).expect("reward");
        state.observe("b", 3.0).expect("reward");
    }
    assert_eq!(
        state.recompute(&spec, 1, 0).weights,
        vec![("a".into(), 0.5), ("b".into(), 0.5)]
    );
}

#[test]
fn discounting_forgets_old_rewards() {
    let spec_discounted = spec(
        "binary",
        "increase",
        json!({"discount": 0.5, "warmup": 0, "update_every": 20, "floor": 0.0}),
    );
    let spec_plain = spec(
        "binary",
        "increase",
        json!({"discount": 1.0, "warmup": 0, "update_every": 20, "floor": 0.0}),
    );
    let mut discounted = BanditState::new(&spec_discounted).expect("thompson");
    let mut plain = BanditState::new(&spec_plain).expect("thompson");
    // Ten batches where a is better, then three where b is better.
    for batch in 0..13 {
        for state in [&mut discounted, &mut plain] {
            let (good, bad) = if batch < 10 { ("a", "b") } else { ("b", "a") };
            feed(state, good, 9, 1);
            feed(state, bad, 1, 9);
        }
        discounted.recompute(&spec_discounted, batch + 1, 0);
        plain.recompute(&spec_plain, batch + 1, 0);
    }
    // Statistics were halved at each recomputation: the weight is a geometric sum, below 2 batches' worth.
    assert!(
        discounted.arms()[0].weight() < 20.0,
        "{:?}",
        discounted.arms()
    );
    assert_eq!(discounted.arms()[0].count(), 130);
    assert_eq!(plain.arms()[0].weight(), 130.0);
    let p_disc = discounted.prob_best();
    let p_plain = plain.prob_best();
    assert!(
        p_disc[1] > 0.99,
        "the discounted bandit follows the change: {p_disc:?}"
    );
    assert!(
        p_plain[0] > 0.99,
        "the undiscounted one still trusts the old winner: {p_plain:?}"
    );
}

#[test]
fn outcomes_feed_the_reward_metric_only() {
    let spec = spec("binary", "increase", json!({}));
    let mut state = BanditState::new(&spec).expect("thompson");
    let mut outcome = Outcome {
        event_id: "e1".into(),
        experiment: "bandit".into(),
        task_id: "t".into(),
        unit_id: "u".into(),
        arm: "b".into(),
        epoch: 0,
        ts: 0,
        metrics: [("other".to_string(), 1.0)].into_iter().collect(),
        handled_by: None,
        model_version: None,
        attributes: Default::default(),
    };
    assert_eq!(state.observe_outcome(&spec, &outcome), Ok(false));
    outcome.metrics.insert("r".into(), 1.0);
    assert_eq!(state.observe_outcome(&spec, &outcome), Ok(true));
    assert_eq!((state.arms()[1].count(), state.arms()[1].mean()), (1, 1.0));

    // A capped continuous reward enters the posterior cut to its cap.
    let capped = ExperimentSpec::parse(&json!({
        "key": "bandit",
        "arms": [{"key": "a", "role": "baseline"}, {"key": "b", "role": "treatment"}],
        "allocation": {"policy": "thompson", "reward": "r"},
        "metrics": [{"key": "r", "kind": "continuous", "direction": "increase",
                     "role": "primary", "cap": {"max": 5}}]
    }))
    .expect("valid");
    let mut state = BanditState::new(&capped).expect("thompson");
    outcome.metrics.insert("r".into(), 100.0);
    assert_eq!(state.observe_outcome(&capped, &outcome), Ok(true));
    assert_eq!(state.arms()[1].mean(), 5.0);
}

#[test]
fn state_round_trips_through_json_and_periods_assign() {
    let spec = spec(
        "binary",
        "increase",
        json!({"warmup": 1, "update_every": 2}),
    );
    let mut state = BanditState::new(&spec).expect("thompson");
    feed(&mut state, "a", 1, 5);
    feed(&mut state, "b", 5, 1);
    let text = serde_json::to_string(&state).expect("serializes");
    let back: BanditState = serde_json::from_str(&text).expect("deserializes");
    assert_eq!(back, state);
    let period = state.recompute(&spec, 1, 0);
    let again = back.clone().recompute(&spec, 1, 0);
    assert_eq!(period, again, "recomputation is deterministic");
    // Units are hashed into the new period's weights and carry them as propensities.
    let req = crate::assign::AssignRequest::new("u-1", None, Default::default()).expect("valid");
    let a = crate::assign::decide(
        &spec,
        Status::Running,
        1,
        0,
        &period,
        &req,
        String::new(),
        0,
    );
    let w = period
        .weights
        .iter()
        .find(|(k, _)| *k == a.arm)
        .map(|(_, w)| *w);
    assert_eq!(Some(a.propensity), w);
    assert_eq!(a.period, 1);
}

/// Largest gap in any arm's P(best) between the normal approximation and Beta quadrature.
const APPROX_TOLERANCE: f64 = 0.01;

#[test]
fn the_normal_approximation_tracks_the_beta_quadrature() {
    let rate_sets = [
        [0.05, 0.06, 0.055, 0.05],
        [0.3, 0.34, 0.32, 0.31],
        [0.9, 0.92, 0.91, 0.93],
        [0.5, 0.5, 0.52, 0.49],
        [0.01, 0.02, 0.015, 0.012],
    ];
    for smaller in [
        NORMAL_APPROX_MIN,
        2.0 * NORMAL_APPROX_MIN,
        10.0 * NORMAL_APPROX_MIN,
    ] {
        for rates in rate_sets {
            // Scale each arm so that its smaller Beta parameter is `smaller`.
            let params: Vec<(f64, f64)> = rates
                .iter()
                .map(|&r: &f64| {
                    let n = (smaller - 1.0) / r.min(1.0 - r);
                    (1.0 + r * n, 1.0 + (1.0 - r) * n)
                })
                .collect();
            let exact = liftlab_stats::beta_prob_best(&params).expect("quadrature");
            let approx = liftlab_stats::prob_best(&beta_as_normal(&params)).expect("quadrature");
            for (e, a) in exact.iter().zip(&approx) {
                assert!(
                    (e - a).abs() < APPROX_TOLERANCE,
                    "{params:?}: exact {exact:?}, approximation {approx:?}"
                );
            }
        }
    }
}

#[test]
fn large_binary_samples_take_the_normal_path() {
    let spec = spec(
        "binary",
        "increase",
        json!({"floor": 0.0, "warmup": 0, "update_every": 1}),
    );
    let mut state = BanditState::new(&spec).expect("thompson");
    feed(&mut state, "a", 300, 700);
    feed(&mut state, "b", 330, 670);
    // Beta(301, 701) and Beta(331, 671): both parameters ≥ 100, so the approximation is used.
    let expected = liftlab_stats::prob_best(&beta_as_normal(&[(301.0, 701.0), (331.0, 671.0)]))
        .expect("quadrature");
    let got = state.prob_best();
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 1e-12, "{got:?} vs {expected:?}");
    }
    // And it agrees with the closed form of the exact Beta comparison.
    let exact_b = beta_b_beats_a(301, 701, 331, 671);
    assert!(
        (got[1] - exact_b).abs() < APPROX_TOLERANCE,
        "{got:?} vs exact {exact_b}"
    );
}
