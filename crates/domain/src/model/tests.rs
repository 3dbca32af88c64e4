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
