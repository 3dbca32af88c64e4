//! Tests of the shared records: applying aggregate deltas.

use super::*;

fn delta(old: Option<f64>, new: f64, propensity: f64) -> AggDelta {
    AggDelta {
        key: AggKey {
            epoch: 0,
            arm: "ai".into(),
            metric: "m".into(),
            scope: AggScope::Overall,
        },
        old,
        new,
        propensity,
    }
}

#[test]
fn deltas_replace_a_units_value_in_every_sum() {
    let mut agg = MetricAggregate::default();
    agg.try_apply(&delta(None, 2.0, 0.5)).expect("first value");
    agg.try_apply(&delta(None, 4.0, 0.25)).expect("second unit");
    agg.try_apply(&delta(Some(2.0), 6.0, 0.5))
        .expect("the first unit's value changes");
    // Units now hold 6 (p = 0.5) and 4 (p = 0.25).
    assert_eq!(agg.moments.n(), 2);
    assert!((agg.moments.mean() - 5.0).abs() < 1e-12);
    assert!((agg.moments.variance() - 2.0).abs() < 1e-12);
    assert!((agg.ipw_weight - (2.0 + 4.0)).abs() < 1e-12);
    assert!((agg.ipw_weighted_sum - (6.0 * 2.0 + 4.0 * 4.0)).abs() < 1e-12);
}

#[test]
fn removing_from_an_empty_aggregate_is_reported_or_absorbed() {
    let mut strict = MetricAggregate::default();
    assert!(matches!(
        strict.try_apply(&delta(Some(1.0), 2.0, 1.0)),
        Err(crate::DomainError::RemoveFromEmpty { .. })
    ));
    assert_eq!(
        strict,
        MetricAggregate::default(),
        "a refused delta changes nothing"
    );
    let mut lenient = MetricAggregate::default();
    lenient.apply(&delta(Some(1.0), 2.0, 1.0));
    assert_eq!(
        (
            lenient.moments.n(),
            lenient.moments.mean(),
            lenient.ipw_weight
        ),
        (1, 2.0, 1.0)
    );
}

#[test]
fn statuses_print_as_in_json() {
    for status in [
        Status::Draft,
        Status::Running,
        Status::Paused,
        Status::Stopped,
    ] {
        let json = serde_json::to_value(status).expect("serializes");
        assert_eq!(json.as_str(), Some(status.to_string().as_str()));
    }
}

/// Agreement between co-moments built from three accumulators and from pushing the pairs.
const CO_MOMENTS: f64 = 1e-9;

#[test]
fn co_moments_from_x_y_and_their_sum_match_pushing_the_pairs() {
    // Units enter with (x, y), then some change x (as later events do) while y stays.
    let entered = [
        (12.0, 10.0),
        (30.5, 25.0),
        (8.0, 9.5),
        (41.0, 35.0),
        (19.0, 0.0),
    ];
    let changes = [(1, 28.0), (3, 44.5), (1, 26.0)];
    let (mut x, mut y, mut sum) = (Moments::new(), Moments::new(), Moments::new());
    let mut pairs = entered.to_vec();
    for &(a, b) in &entered {
        x.push(a);
        y.push(b);
        sum.push(a + b);
    }
    for &(unit, new_x) in &changes {
        let (old_x, b) = pairs[unit];
        x.remove(old_x).expect("entered");
        x.push(new_x);
        sum.remove(old_x + b).expect("entered");
        sum.push(new_x + b);
        pairs[unit].0 = new_x;
    }
    let mut pushed = liftlab_stats::CoMoments::new();
    for &(a, b) in &pairs {
        pushed.push(a, b);
    }
    let built = co_moments(&x, &y, &sum);
    assert_eq!(built.n(), 5);
    let near = |a: f64, b: f64| (a - b).abs() <= CO_MOMENTS * a.abs().max(b.abs()).max(1.0);
    assert!(
        near(built.covariance(), pushed.covariance()),
        "{} vs {}",
        built.covariance(),
        pushed.covariance()
    );
    assert!(near(built.c_xy(), pushed.c_xy()));
    assert!(near(built.mean_x(), pushed.mean_x()) && near(built.mean_y(), pushed.mean_y()));
    assert!(near(built.variance_x(), pushed.variance_x()));
    assert!(near(built.variance_y(), pushed.variance_y()));
    // The covariance is clearly positive here, so a sign error could not pass.
    assert!(pushed.covariance() > 50.0);

    // Accumulators that disagree on their counts give no co-moments.
    sum.push(1.0);
    assert_eq!(co_moments(&x, &y, &sum).n(), 0);
    assert_eq!(co_moments(&x, &Moments::new(), &Moments::new()).n(), 0);
}

#[test]
fn an_outcome_may_lie_at_most_five_minutes_after_its_receipt() {
    let received: Millis = 1_795_000_000_000;
    let check = |lead_ms: Millis| check_outcome_ts(received + lead_ms, received);
    assert_eq!(check(-86_400_000), Ok(()), "the past is fine");
    assert_eq!(check(0), Ok(()));
    assert_eq!(
        check(MAX_OUTCOME_LEAD),
        Ok(()),
        "the limit itself is allowed"
    );
    let just_past = check(MAX_OUTCOME_LEAD + 1).expect_err("a millisecond past the limit");
    assert!(
        just_past.contains(" is 6 minutes in the future; "),
        "{just_past}"
    );
    let hours = check(61 * 60_000).expect_err("an hour ahead");
    assert!(
        hours.starts_with("2026-11-18T") && hours.contains(" is 61 minutes in the future; "),
        "{hours}"
    );
    assert!(!hours.ends_with('.'), "{hours}");
    assert!(
        check_outcome_ts(Millis::MAX, Millis::MIN).is_err(),
        "no overflow"
    );
}
