//! The metrics section of a spec and what refers to metrics: ratio parts, metric lists, drift and ROI.

use super::*;

/// The metrics and the primary metric's index; ratio parts are checked against the declared keys.
pub(super) fn metrics(w: &mut Walker, v: &Value, index: &Index) -> Option<(Vec<Metric>, usize)> {
    let items = w.array("/metrics", v)?;
    let mut metrics = Vec::with_capacity(items.len());
    let mut ok = true;
    let mut seen = BTreeSet::new();
    let mut primaries = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("/metrics/{i}");
        let Some(map) = w.object(&at, item, METRIC_FIELDS) else {
            ok = false;
            continue;
        };
        let key = w
            .required(map, &at, "key")
            .and_then(|v| w.slug(&pointer(&at, "key"), v, "metric key"));
        if let Some(k) = &key {
            if !seen.insert(k.clone()) {
                w.problem(&pointer(&at, "key"), format!("duplicate metric key {k:?}"));
                ok = false;
            }
        }
        let kind = w
            .required(map, &at, "kind")
            .and_then(|v| w.choice(&pointer(&at, "kind"), v, KINDS));
        let direction = w
            .required(map, &at, "direction")
            .and_then(|v| w.choice(&pointer(&at, "direction"), v, DIRECTIONS));
        let role = w
            .required(map, &at, "role")
            .and_then(|v| w.choice(&pointer(&at, "role"), v, METRIC_ROLES));
        if role == Some(MetricRole::Primary) {
            primaries.push(i);
            if primaries.len() > 1 {
                w.problem(
                    &pointer(&at, "role"),
                    format!(
                        "only one metric can be primary; /metrics/{} is primary already",
                        primaries[0]
                    ),
                );
                ok = false;
            }
        }
        let aggregate = map
            .get("aggregate")
            .map(|v| w.choice(&pointer(&at, "aggregate"), v, AGGREGATES));
        let description = map
            .get("description")
            .map(|v| w.string(&pointer(&at, "description"), v, 0, MAX_TEXT));
        let parts = MetricParts::walk(w, &at, map, index, kind, role);
        let (Some(key), Some(kind), Some(direction), Some(role), Some(parts)) =
            (key, kind, direction, role, parts)
        else {
            ok = false;
            continue;
        };
        let aggregate = match (aggregate, &parts.ratio) {
            (Some(None), _) => {
                ok = false;
                continue;
            }
            (None, Some(_)) => None,
            (None, None) => Some(kind.default_aggregate()),
            (Some(Some(_)), Some(_)) => {
                w.problem(
                    &pointer(&at, "aggregate"),
                    "a ratio metric has no events of its own to aggregate: its numerator's and denominator's aggregates apply",
                );
                ok = false;
                continue;
            }
            (Some(Some(a)), None) => Some(a),
        };
        let description = match description {
            None => None,
            Some(Some(d)) => Some(d),
            Some(None) => {
                ok = false;
                continue;
            }
        };
        metrics.push(Metric {
            key,
            kind,
            direction,
            role,
            aggregate,
            description,
            covariate: parts.covariate,
            ratio: parts.ratio,
            cap: parts.cap,
            max_harm: parts.max_harm,
        });
    }
    if items.is_empty() {
        w.problem("/metrics", "an experiment needs at least one metric");
        ok = false;
    } else if primaries.is_empty() {
        w.problem(
            "/metrics",
            "exactly one metric must have role primary, found none",
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    let primary = metrics.iter().position(|m| m.role == MetricRole::Primary)?;
    Some((metrics, primary))
}

/// The optional members of a metric that depend on its kind and role: covariate, ratio, cap
/// and max_harm.
struct MetricParts {
    covariate: Option<Covariate>,
    ratio: Option<Ratio>,
    cap: Option<Cap>,
    max_harm: Option<f64>,
}

impl MetricParts {
    /// Walks the members at `at` (a metric); `None` when any of them has a problem. `kind`
    /// and `role` are `None` when the metric's own are invalid (reported there).
    fn walk(
        w: &mut Walker,
        at: &str,
        map: &Map<String, Value>,
        index: &Index,
        kind: Option<MetricKind>,
        role: Option<MetricRole>,
    ) -> Option<MetricParts> {
        let mut ok = true;
        let key = map.get("key").and_then(Value::as_str);
        let ratio = match map.get("ratio") {
            None => None,
            Some(v) => {
                let ratio = ratio(w, &pointer(at, "ratio"), v, index, key);
                ok &= ratio.is_some();
                if kind == Some(MetricKind::Binary) {
                    w.problem(
                        &pointer(at, "kind"),
                        "a ratio metric cannot be binary: use continuous, duration, count or cost",
                    );
                    ok = false;
                }
                ratio
            }
        };
        let is_ratio = map.contains_key("ratio");
        let covariate = match map.get("covariate") {
            None => None,
            Some(_) if is_ratio => {
                w.problem(
                    &pointer(at, "covariate"),
                    "a ratio metric cannot have a covariate",
                );
                ok = false;
                None
            }
            Some(v) => {
                let at = pointer(at, "covariate");
                let attribute = w.object(&at, v, COVARIATE_FIELDS).and_then(|m| {
                    let name = w.required(m, &at, "attribute")?;
                    let name_at = pointer(&at, "attribute");
                    let name = w.string(&name_at, name, 0, usize::MAX)?;
                    w.attribute(&name_at, &name).then_some(name)
                });
                ok &= attribute.is_some();
                attribute.map(|attribute| Covariate { attribute })
            }
        };
        let cap = match map.get("cap") {
            None => None,
            Some(_) if is_ratio => {
                w.problem(
                    &pointer(at, "cap"),
                    "a ratio metric has no values of its own to cap: cap its numerator or denominator",
                );
                ok = false;
                None
            }
            Some(_) if kind == Some(MetricKind::Binary) => {
                w.problem(&pointer(at, "cap"), "a binary metric cannot be capped");
                ok = false;
                None
            }
            Some(v) => {
                let at = pointer(at, "cap");
                let max = w.object(&at, v, CAP_FIELDS).and_then(|m| {
                    let x = w.required(m, &at, "max")?;
                    let max_at = pointer(&at, "max");
                    let max = w.number_in(&max_at, x, "> 0", |x| x > 0.0)?;
                    if kind == Some(MetricKind::Count) && max.fract() != 0.0 {
                        w.problem(
                            &max_at,
                            format!("a count's cap must be a whole number, got {max}"),
                        );
                        return None;
                    }
                    Some(max)
                });
                ok &= max.is_some();
                max.map(|max| Cap { max })
            }
        };
        let max_harm = match (map.get("max_harm"), role) {
            (None, Some(MetricRole::Guardrail)) => Some(0.0),
            (None, _) => None,
            (Some(v), Some(MetricRole::Guardrail)) => {
                let x = w.number_in(&pointer(at, "max_harm"), v, "in [0, 1)", |x| {
                    (0.0..1.0).contains(&x)
                });
                ok &= x.is_some();
                x
            }
            (Some(_), Some(other)) => {
                let name = METRIC_ROLES
                    .iter()
                    .find(|(_, r)| *r == other)
                    .map_or("", |(n, _)| *n);
                w.problem(
                    &pointer(at, "max_harm"),
                    format!("only a guardrail has a harm tolerance; this metric's role is {name}"),
                );
                ok = false;
                None
            }
            // The role itself is invalid and reported there.
            (Some(_), None) => None,
        };
        ok.then_some(MetricParts {
            covariate,
            ratio,
            cap,
            max_harm,
        })
    }
}

/// A ratio's numerator and denominator: declared metrics, not ratios, not the metric itself.
pub(super) fn ratio(
    w: &mut Walker,
    at: &str,
    v: &Value,
    index: &Index,
    own_key: Option<&str>,
) -> Option<Ratio> {
    let map = w.object(at, v, RATIO_FIELDS)?;
    let mut part = |field: &str| -> Option<String> {
        let x = w.required(map, at, field)?;
        let part_at = pointer(at, field);
        let key = w.string(&part_at, x, 1, MAX_ID)?;
        if Some(key.as_str()) == own_key {
            w.problem(
                &part_at,
                format!("a ratio cannot use itself as its {field}"),
            );
            return None;
        }
        let Some(declared) = index.metric(&key) else {
            w.problem(
                &part_at,
                format!("the {field} {key:?} is not a declared metric"),
            );
            return None;
        };
        if declared.ratio {
            w.problem(
                &part_at,
                format!("the {field} {key:?} is a ratio metric; a ratio's parts must be metrics that outcomes report"),
            );
            return None;
        }
        Some(key)
    };
    let numerator = part("numerator");
    let denominator = part("denominator");
    Some(Ratio {
        numerator: numerator?,
        denominator: denominator?,
    })
}
/// A list of declared metric keys (no duplicates) at `at`.
pub(super) fn metric_refs(
    w: &mut Walker,
    at: &str,
    v: &Value,
    index: &Index,
) -> Option<Vec<String>> {
    let items = w.array(at, v)?;
    let mut ok = true;
    if items.is_empty() {
        w.problem(at, "must name at least one metric");
        ok = false;
    }
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_at = pointer(at, &i.to_string());
        let Some(key) = w.string(&item_at, item, 1, MAX_ID) else {
            ok = false;
            continue;
        };
        if !index.has_metric(&key) {
            w.problem(&item_at, format!("{key:?} is not a declared metric"));
            ok = false;
            continue;
        }
        if index.is_ratio(&key) {
            w.problem(
                &item_at,
                format!("{key:?} is a ratio metric; drift monitors metrics that outcomes report"),
            );
            ok = false;
            continue;
        }
        if out.contains(&key) {
            w.problem(&item_at, format!("duplicate metric {key:?}"));
            ok = false;
            continue;
        }
        out.push(key);
    }
    ok.then_some(out)
}

pub(super) fn drift(w: &mut Walker, v: &Value, index: &Index) -> Option<DriftSpec> {
    let map = w.object("/drift", v, DRIFT_FIELDS)?;
    let refs = w
        .required(map, "/drift", "metrics")
        .and_then(|x| metric_refs(w, "/drift/metrics", x, index));
    let (lo, hi) = DRIFT_WINDOW;
    let reference_window = map.get("reference_window").map_or(Some(500), |x| {
        w.integer("/drift/reference_window", x, lo, hi)
    });
    let recent_window = map
        .get("recent_window")
        .map_or(Some(200), |x| w.integer("/drift/recent_window", x, lo, hi));
    let page_hinkley = match map.get("page_hinkley") {
        None => Some(PageHinkleySettings {
            delta: 0.1,
            lambda: 50.0,
        }),
        Some(x) => w
            .object("/drift/page_hinkley", x, PAGE_HINKLEY_FIELDS)
            .and_then(|m| {
                let delta = m.get("delta").map_or(Some(0.1), |x| {
                    w.number_in("/drift/page_hinkley/delta", x, "≥ 0", |d| d >= 0.0)
                });
                let lambda = m.get("lambda").map_or(Some(50.0), |x| {
                    w.number_in("/drift/page_hinkley/lambda", x, "> 0", |l| l > 0.0)
                });
                Some(PageHinkleySettings {
                    delta: delta?,
                    lambda: lambda?,
                })
            }),
    };
    let cusum = match map.get("cusum") {
        None => Some(CusumSettings {
            slack: 0.25,
            threshold: 15.0,
        }),
        Some(x) => w.object("/drift/cusum", x, CUSUM_FIELDS).and_then(|m| {
            let slack = m.get("slack").map_or(Some(0.25), |x| {
                w.number_in("/drift/cusum/slack", x, "≥ 0", |s| s >= 0.0)
            });
            let threshold = m.get("threshold").map_or(Some(15.0), |x| {
                w.number_in("/drift/cusum/threshold", x, "> 0", |h| h > 0.0)
            });
            Some(CusumSettings {
                slack: slack?,
                threshold: threshold?,
            })
        }),
    };
    let window_alpha = map.get("window_alpha").map_or(Some(0.001), |x| {
        w.number_in("/drift/window_alpha", x, "in (0, 1)", |a| {
            0.0 < a && a < 1.0
        })
    });
    let auto_rebaseline = map
        .get("auto_rebaseline")
        .map_or(Some(false), |x| w.boolean("/drift/auto_rebaseline", x));
    Some(DriftSpec {
        metrics: refs?,
        reference_window: reference_window?,
        recent_window: recent_window?,
        page_hinkley: page_hinkley?,
        cusum: cusum?,
        window_alpha: window_alpha?,
        auto_rebaseline: auto_rebaseline?,
    })
}

/// A reference to a declared metric of one kind, or the first metric of that kind by default.
pub(super) fn metric_of_kind(
    w: &mut Walker,
    at: &str,
    v: Option<&Value>,
    index: &Index,
    kind: MetricKind,
    kind_name: &str,
) -> Option<Option<String>> {
    let Some(v) = v else {
        let first = index
            .metrics
            .iter()
            .find(|m| m.kind == Some(kind) && !m.ratio);
        return Some(first.map(|m| m.key.clone()));
    };
    let key = w.string(at, v, 1, MAX_ID)?;
    match index.metric(&key) {
        None => {
            w.problem(at, format!("{key:?} is not a declared metric"));
            None
        }
        Some(Declared { kind: Some(k), .. }) if *k != kind => {
            w.problem(at, format!("{key:?} must be a metric of kind {kind_name}"));
            None
        }
        Some(Declared { ratio: true, .. }) => {
            w.problem(
                at,
                format!("{key:?} is a ratio metric; ROI needs a metric measured per case"),
            );
            None
        }
        // A metric whose own kind is invalid is reported at the metric.
        Some(_) => Some(Some(key)),
    }
}

pub(super) fn roi(w: &mut Walker, v: &Value, index: &Index) -> Option<Roi> {
    let map = w.object("/roi", v, ROI_FIELDS)?;
    let non_negative = |x: f64| x >= 0.0;
    let volume = w
        .required(map, "/roi", "volume_per_month")
        .and_then(|x| w.number_in("/roi/volume_per_month", x, "≥ 0", non_negative));
    let cost = w
        .required(map, "/roi", "human_cost_per_hour")
        .and_then(|x| w.number_in("/roi/human_cost_per_hour", x, "≥ 0", non_negative));
    let fixed_monthly_cost = map.get("fixed_monthly_cost").map_or(Some(0.0), |x| {
        w.number_in("/roi/fixed_monthly_cost", x, "≥ 0", non_negative)
    });
    let cost_metric = metric_of_kind(
        w,
        "/roi/cost_metric",
        map.get("cost_metric"),
        index,
        MetricKind::Cost,
        "cost",
    );
    let duration_metric = metric_of_kind(
        w,
        "/roi/duration_metric",
        map.get("duration_metric"),
        index,
        MetricKind::Duration,
        "duration",
    );
    let duration_unit = map
        .get("duration_unit")
        .map_or(Some(DurationUnit::Minutes), |x| {
            w.choice("/roi/duration_unit", x, DURATION_UNITS)
        });
    let currency = match map.get("currency") {
        None => Some("USD".to_string()),
        Some(x) => w.string("/roi/currency", x, 0, usize::MAX).and_then(|c| {
            if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) {
                Some(c)
            } else {
                w.problem(
                    "/roi/currency",
                    format!("{c:?} is not an ISO 4217 code such as USD or EUR"),
                );
                None
            }
        }),
    };
    Some(Roi {
        volume_per_month: volume?,
        human_cost_per_hour: cost?,
        fixed_monthly_cost: fixed_monthly_cost?,
        cost_metric: cost_metric?,
        duration_metric: duration_metric?,
        duration_unit: duration_unit?,
        currency: currency?,
    })
}
