//! Reading a scenario document into a [`Scenario`]: the top level, the spec it names, the arms' ground-truth models and their distributions.

use super::validate::{
    non_negative, number, opt_string, pointer, positive_number, probability_value, report,
    unknown_fields, whole, Problems,
};
use super::variation::{
    parse_drift, parse_effort, parse_handled_mix, parse_mix_changes, parse_segments,
};
use super::*;

impl Scenario {
    /// Reads and validates a scenario file; a spec given as a path is resolved against the
    /// scenario's directory.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the scenario {}", path.display()))?;
        let document: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fallback = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".to_string());
        Scenario::parse(&document, base, &fallback)
            .with_context(|| format!("invalid scenario {}", path.display()))
    }

    /// Validates a scenario document, listing every problem with its pointer.
    pub fn parse(document: &Value, base: &Path, fallback_name: &str) -> anyhow::Result<Scenario> {
        let mut problems = Problems::default();
        let Some(top) = document.as_object() else {
            bail!("the scenario must be a JSON object");
        };
        const FIELDS: &[&str] = &[
            "name",
            "description",
            "demo",
            "spec",
            "duration_unit",
            "tasks",
            "arrivals_per_minute",
            "outcome_delay_minutes",
            "tick_minutes",
            "batch_size",
            "human_cost_per_hour",
            "human_share",
            "attributes",
            "effort",
            "metrics",
            "arms",
            "segments",
            "drift",
            "mix_changes",
        ];
        unknown_fields(top, "", FIELDS, &mut problems);

        let name =
            opt_string(top, "", "name", &mut problems).unwrap_or_else(|| fallback_name.to_string());
        let description = opt_string(top, "", "description", &mut problems);
        let demo = match top.get("demo") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                problems.push("/demo", "must be true or false");
                false
            }
        };
        let (spec_document, spec, spec_path) = match load_spec(top.get("spec"), base) {
            Ok(pair) => pair,
            Err(message) => {
                problems.push("/spec", message);
                return Err(report(problems));
            }
        };

        let tasks = match top.get("tasks") {
            None => {
                problems.push("/tasks", "is required: the number of tasks to simulate");
                0
            }
            Some(v) => whole(v, "/tasks", 1, 10_000_000, &mut problems),
        };
        let arrivals_per_minute = positive_number(
            top.get("arrivals_per_minute"),
            "/arrivals_per_minute",
            10.0,
            &mut problems,
        );
        let outcome_delay_minutes = match top.get("outcome_delay_minutes") {
            None => Dist::Constant(0.0),
            Some(v) => parse_dist(v, "/outcome_delay_minutes", true, &mut problems),
        };
        let tick_minutes =
            positive_number(top.get("tick_minutes"), "/tick_minutes", 5.0, &mut problems);
        let batch_size = match top.get("batch_size") {
            None => 500,
            Some(v) => whole(v, "/batch_size", 1, 100_000, &mut problems),
        };
        let human_cost_per_hour = match top.get("human_cost_per_hour") {
            None => spec.roi().map(|r| r.human_cost_per_hour()).unwrap_or(0.0),
            Some(v) => non_negative(v, "/human_cost_per_hour", &mut problems),
        };
        let duration_unit = match top.get("duration_unit") {
            None => spec
                .roi()
                .map_or(DurationUnit::Minutes, |r| r.duration_unit()),
            Some(v) => match serde_json::from_value::<DurationUnit>(v.clone()) {
                Ok(unit) => unit,
                Err(_) => {
                    problems.push("/duration_unit", "must be seconds, minutes or hours");
                    DurationUnit::Minutes
                }
            },
        };
        let human_share = match top.get("human_share") {
            None => DEFAULT_HUMAN_SHARE.to_vec(),
            Some(v) => parse_human_share(v, &mut problems),
        };
        let attributes = match top.get("attributes") {
            None => BTreeMap::new(),
            Some(v) => parse_attributes(v, &mut problems),
        };
        let rates = rate_names(top.get("arms"));
        let metrics = parse_metric_map(top.get("metrics"), &spec, &rates, &mut problems);
        let arms = parse_arms(top.get("arms"), &spec, &metrics, &mut problems);
        let segments = match top.get("segments") {
            None => Vec::new(),
            Some(v) => parse_segments(v, &spec, &rates, &mut problems),
        };
        let drift = match top.get("drift") {
            None => Vec::new(),
            Some(v) => parse_drift(v, &spec, tasks, &rates, &mut problems),
        };
        let mix_changes = match top.get("mix_changes") {
            None => Vec::new(),
            Some(v) => parse_mix_changes(v, &segments, tasks, &mut problems),
        };
        let effort = top
            .get("effort")
            .and_then(|v| parse_effort(v, &attributes, &segments, &mut problems));
        if metrics.iter().any(|(_, q)| *q == Quantity::Cost)
            && top.get("human_cost_per_hour").is_none()
            && spec.roi().is_none()
        {
            problems.push(
                "/human_cost_per_hour",
                "is required when a metric is fed from cost (or give the spec an roi)",
            );
        }
        if !problems.0.is_empty() {
            return Err(report(problems));
        }
        Ok(Scenario {
            name,
            description,
            demo,
            spec_document,
            spec_path,
            spec,
            tasks,
            arrivals_per_minute,
            outcome_delay_minutes,
            tick_minutes,
            batch_size,
            human_cost_per_hour,
            duration_unit,
            human_share,
            attributes,
            effort,
            metrics,
            arms,
            segments,
            drift,
            mix_changes,
        })
    }

    /// A generic scenario for a spec that has none: the baseline is a human workflow and each
    /// treatment an AI-assisted one that is somewhat faster and cheaper. The demo uses it.
    pub fn generic(spec_document: Value, tasks: usize) -> anyhow::Result<Scenario> {
        let spec = ExperimentSpec::parse(&spec_document)
            .map_err(|e| anyhow::anyhow!("the spec is invalid: {e}"))?;
        let mut arms = Map::new();
        let mut treatment = 0_u32;
        // A 42-minute median cycle time, in the spec's duration unit.
        let unit = spec
            .roi()
            .map_or(DurationUnit::Minutes, |r| r.duration_unit());
        let median = 42.0 * unit.per_hour() / 60.0;
        // Every binary metric gets its own rate: favourable outcomes are common, unfavourable rare.
        let binary: Vec<(&str, bool)> = spec
            .metrics()
            .iter()
            .filter(|m| m.kind() == MetricKind::Binary)
            // A key that names a built-in quantity or parameter is fed from that instead.
            .filter(|m| {
                Quantity::parse(m.key(), &[]).is_none() && Param::parse(m.key(), &[]).is_none()
            })
            .map(|m| (m.key(), m.direction() == Direction::Increase))
            .collect();
        for arm in spec.arms() {
            let gain = if arm.role() == ArmRole::Baseline {
                0.0
            } else {
                0.08 * f64::from(treatment + 1)
            };
            let rates: Map<String, Value> = binary
                .iter()
                .map(|&(key, favourable)| {
                    let p = if favourable {
                        (0.85 + gain / 4.0).min(0.99)
                    } else {
                        0.08 * (1.0 - gain / 2.0)
                    };
                    (key.to_string(), Value::from(p))
                })
                .collect();
            let mut model = if arm.role() == ArmRole::Baseline {
                serde_json::json!({
                    "cycle_time": {"lognormal": {"median": median, "sigma": 0.6}},
                    "escalation": 0.10,
                    "quality": 0.88,
                    "ai_cost": {"constant": 0.0},
                    "touches": 2.0,
                    "score": {"normal": {"mean": 4.0, "sd": 0.8}},
                    "handled_by": {"human": 1.0}
                })
            } else {
                treatment += 1;
                // Each further treatment is a little better than the one before.
                let gain = 0.08 * f64::from(treatment);
                serde_json::json!({
                    "cycle_time": {"lognormal": {"median": median * (1.0 - gain), "sigma": 0.6}},
                    "escalation": 0.10 * (1.0 - gain / 2.0),
                    "quality": (0.88 + gain / 4.0).min(0.99),
                    "ai_cost": {"lognormal": {"median": 0.04, "sigma": 0.3}},
                    "touches": 2.0 * (1.0 - gain),
                    "score": {"normal": {"mean": 4.0 + gain, "sd": 0.8}},
                    "handled_by": {"ai": 0.6, "hybrid": 0.3, "human": 0.1}
                })
            };
            if let Some(object) = model.as_object_mut() {
                object.insert("rates".to_string(), Value::Object(rates));
            }
            arms.insert(arm.key().to_string(), model);
        }
        // Targeted attributes get an allowed value; segment attributes an even mix of values.
        let rules = spec.targeting().rules();
        let attributes: Map<String, Value> = rules
            .iter()
            .filter(|(k, _)| !spec.segments().contains(k))
            .filter_map(|(k, allowed)| {
                allowed
                    .iter()
                    .next()
                    .map(|v| (k.clone(), Value::String(v.clone())))
            })
            .collect();
        let segments: Vec<Value> = spec
            .segments()
            .iter()
            .map(|attribute| {
                let values: Vec<String> = match rules.get(attribute) {
                    Some(allowed) => allowed.iter().cloned().collect(),
                    None => typical_values(attribute),
                };
                let share = 1.0 / count(values.len());
                let mix: Map<String, Value> = values
                    .into_iter()
                    .map(|v| (v, Value::from(share)))
                    .collect();
                serde_json::json!({"attribute": attribute, "mix": mix})
            })
            .collect();
        let mut document = serde_json::json!({
            "name": format!("generic traffic for {}", spec.key()),
            "spec": spec_document,
            "tasks": tasks,
            "arrivals_per_minute": 20.0,
            "outcome_delay_minutes": {"exponential": {"mean": 20.0}},
            "human_cost_per_hour": spec.roi().map(|r| r.human_cost_per_hour()).unwrap_or(45.0),
            "attributes": attributes,
            "segments": segments,
            "arms": arms,
        });
        // A spec with a covariate gets a router that sends it: the task's effort estimate.
        if let Some(attribute) = spec.metrics().iter().find_map(|m| m.covariate()) {
            document["effort"] =
                serde_json::json!({"attribute": attribute, "mean": median, "sigma": 0.5});
        }
        Scenario::parse(&document, Path::new("."), spec.key())
    }
}

pub(super) fn parse_dist(
    v: &Value,
    at: &str,
    must_be_non_negative: bool,
    problems: &mut Problems,
) -> Dist {
    const SHAPES: &str = "{\"constant\": x}, {\"lognormal\": {\"median\", \"sigma\"}}, {\"exponential\": {\"mean\"}} or {\"normal\": {\"mean\", \"sd\"}}";
    let fallback = Dist::Constant(0.0);
    let Some((kind, params)) = v
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next())
    else {
        problems.push(at, format!("must be a distribution: {SHAPES}"));
        return fallback;
    };
    let at_kind = pointer(at, kind);
    let field = |name: &str, problems: &mut Problems| -> Option<f64> {
        match params.get(name) {
            Some(x) => number(x, &pointer(&at_kind, name), problems),
            None => {
                problems.push(at_kind.clone(), format!("needs {name}"));
                None
            }
        }
    };
    let dist = match kind.as_str() {
        "constant" => number(params, &at_kind, problems).map(Dist::Constant),
        "lognormal" => {
            if let Some(o) = params.as_object() {
                unknown_fields(o, &at_kind, &["median", "sigma"], problems);
            }
            match (field("median", problems), field("sigma", problems)) {
                (Some(median), Some(sigma)) if median > 0.0 && sigma >= 0.0 => {
                    Some(Dist::Lognormal { median, sigma })
                }
                (Some(_), Some(_)) => {
                    problems.push(at_kind.clone(), "needs median > 0 and sigma ≥ 0");
                    None
                }
                _ => None,
            }
        }
        "exponential" => {
            if let Some(o) = params.as_object() {
                unknown_fields(o, &at_kind, &["mean"], problems);
            }
            match field("mean", problems) {
                Some(mean) if mean > 0.0 => Some(Dist::Exponential { mean }),
                Some(_) => {
                    problems.push(pointer(&at_kind, "mean"), "must be > 0");
                    None
                }
                None => None,
            }
        }
        "normal" => {
            if let Some(o) = params.as_object() {
                unknown_fields(o, &at_kind, &["mean", "sd"], problems);
            }
            match (field("mean", problems), field("sd", problems)) {
                (Some(mean), Some(sd)) if sd >= 0.0 => Some(Dist::Normal { mean, sd }),
                (Some(_), Some(_)) => {
                    problems.push(pointer(&at_kind, "sd"), "must be ≥ 0");
                    None
                }
                _ => None,
            }
        }
        other => {
            problems.push(at, format!("unknown distribution {other:?}; use {SHAPES}"));
            None
        }
    };
    match dist {
        Some(d) if must_be_non_negative && !d.non_negative() => {
            problems.push(
                at,
                "must never be negative: use constant ≥ 0, lognormal or exponential",
            );
            fallback
        }
        Some(d) => d,
        None => fallback,
    }
}

pub(super) fn load_spec(
    v: Option<&Value>,
    base: &Path,
) -> Result<(Value, ExperimentSpec, Option<PathBuf>), String> {
    let (document, path) = match v {
        None => return Err("is required: an inline experiment spec or the path of one".to_string()),
        Some(Value::String(path)) => {
            let path: PathBuf = base.join(path);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read the spec {}: {e}", path.display()))?;
            let document = serde_json::from_str(&text)
                .map_err(|e| format!("the spec {} is not valid JSON: {e}", path.display()))?;
            (document, Some(path))
        }
        Some(doc @ Value::Object(_)) => (doc.clone(), None),
        Some(_) => return Err("must be an experiment spec object or the path of one".to_string()),
    };
    let spec = ExperimentSpec::parse(&document)
        .map_err(|e| format!("the experiment spec is invalid: {e}"))?;
    Ok((document, spec, path))
}

pub(super) fn parse_human_share(v: &Value, problems: &mut Problems) -> Vec<(HandledBy, f64)> {
    let mut shares = DEFAULT_HUMAN_SHARE.to_vec();
    let Some(object) = v.as_object() else {
        problems.push(
            "/human_share",
            "must be an object like {\"human\": 1, \"hybrid\": 0.5, \"ai\": 0.1}",
        );
        return shares;
    };
    for (who, share) in object {
        let at = pointer("/human_share", who);
        match handled_by(who) {
            Some(who) => {
                let s = non_negative(share, &at, problems);
                if let Some(slot) = shares.iter_mut().find(|(w, _)| *w == who) {
                    slot.1 = s;
                }
            }
            None => problems.push(at, "must be ai, human or hybrid"),
        }
    }
    shares
}

pub(super) fn parse_attributes(v: &Value, problems: &mut Problems) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(object) = v.as_object() else {
        problems.push(
            "/attributes",
            "must be an object of attribute → string value",
        );
        return out;
    };
    for (k, value) in object {
        match value.as_str() {
            Some(s) => {
                out.insert(k.clone(), s.to_string());
            }
            None => problems.push(pointer("/attributes", k), "must be a string"),
        }
    }
    out
}

/// The names of the binary rates any arm defines, sorted.
pub(super) fn rate_names(arms: Option<&Value>) -> Vec<String> {
    let mut names: Vec<String> = arms
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|o| o.values())
        .filter_map(|model| model.get("rates").and_then(Value::as_object))
        .flat_map(|rates| rates.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

pub(super) fn parse_metric_map(
    v: Option<&Value>,
    spec: &ExperimentSpec,
    rates: &[String],
    problems: &mut Problems,
) -> Vec<(String, Quantity)> {
    let given = match v {
        None => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => {
            problems.push(
                "/metrics",
                "must be an object of spec metric → simulated quantity",
            );
            Map::new()
        }
    };
    for key in given.keys() {
        match spec.metric(key) {
            None => problems.push(pointer("/metrics", key), "is not a metric of the spec"),
            Some(m) if m.ratio().is_some() => problems.push(
                pointer("/metrics", key),
                "is a ratio metric: outcomes send its numerator and denominator",
            ),
            Some(_) => {}
        }
    }
    let names: Vec<&str> = Quantity::BUILTIN
        .iter()
        .map(|q| q.name())
        .chain(rates.iter().map(String::as_str))
        .collect();
    spec.metrics()
        .iter()
        // A ratio metric is computed from its parts; outcomes never carry it.
        .filter(|metric| metric.ratio().is_none())
        .map(|metric| {
            let at = pointer("/metrics", metric.key());
            let quantity = match given.get(metric.key()) {
                None => {
                    Quantity::default_for(metric.key(), metric.kind(), metric.direction(), rates)
                }
                Some(Value::String(name)) => match Quantity::parse(name, rates) {
                    Some(q) => q,
                    None => {
                        problems.push(
                            at.clone(),
                            format!("unknown quantity {name:?}; use one of {}", names.join(", ")),
                        );
                        Quantity::default_for(
                            metric.key(),
                            metric.kind(),
                            metric.direction(),
                            rates,
                        )
                    }
                },
                Some(_) => {
                    problems.push(at.clone(), "must be the name of a simulated quantity");
                    Quantity::default_for(metric.key(), metric.kind(), metric.direction(), rates)
                }
            };
            if !quantity.fits(metric.kind()) {
                problems.push(
                    at,
                    format!(
                        "quantity {quantity} cannot feed a metric of kind {:?}",
                        metric.kind()
                    )
                    .to_lowercase(),
                );
            }
            (metric.key().to_string(), quantity)
        })
        .collect()
}

pub(super) fn parse_arms(
    v: Option<&Value>,
    spec: &ExperimentSpec,
    metrics: &[(String, Quantity)],
    problems: &mut Problems,
) -> BTreeMap<String, ArmModel> {
    let mut out = BTreeMap::new();
    let Some(object) = v.and_then(Value::as_object) else {
        problems.push(
            "/arms",
            "is required: an object of arm key → ground-truth model",
        );
        return out;
    };
    for key in object.keys() {
        if spec.arm(key).is_none() {
            problems.push(pointer("/arms", key), "is not an arm of the spec");
        }
    }
    for arm in spec.arms() {
        let at = pointer("/arms", arm.key());
        let Some(model) = object.get(arm.key()) else {
            problems.push(at, "is missing: every arm of the spec needs a model");
            continue;
        };
        let Some(model) = model.as_object() else {
            problems.push(at, "must be an object");
            continue;
        };
        unknown_fields(
            model,
            &at,
            &[
                "cycle_time",
                "escalation",
                "quality",
                "ai_cost",
                "touches",
                "score",
                "rates",
                "handled_by",
                "model_version",
            ],
            problems,
        );
        let cycle_time = model
            .get("cycle_time")
            .map(|d| parse_dist(d, &pointer(&at, "cycle_time"), true, problems));
        let escalation = model.get("escalation").map_or(0.0, |p| {
            probability_value(p, &pointer(&at, "escalation"), problems)
        });
        let quality = model.get("quality").map_or(1.0, |p| {
            probability_value(p, &pointer(&at, "quality"), problems)
        });
        let ai_cost = model.get("ai_cost").map_or(Dist::Constant(0.0), |d| {
            parse_dist(d, &pointer(&at, "ai_cost"), true, problems)
        });
        let touches = model
            .get("touches")
            .map(|t| non_negative(t, &pointer(&at, "touches"), problems));
        let score = model
            .get("score")
            .map(|d| parse_dist(d, &pointer(&at, "score"), false, problems));
        let handled_by = match model.get("handled_by") {
            None if arm.is_baseline() => vec![(HandledBy::Human, 1.0)],
            None => vec![(HandledBy::Ai, 1.0)],
            Some(mix) => parse_handled_mix(mix, &pointer(&at, "handled_by"), problems),
        };
        let model_version = opt_string(model, &at, "model_version", problems);
        let mut rates = BTreeMap::new();
        if let Some(r) = model.get("rates") {
            let at_r = pointer(&at, "rates");
            match r.as_object() {
                Some(r) => {
                    for (name, p) in r {
                        if Param::BUILTIN.iter().any(|b| b.name() == name)
                            || Quantity::BUILTIN.iter().any(|b| b.name() == name)
                        {
                            problems.push(
                                pointer(&at_r, name),
                                "is the name of a built-in quantity; choose another",
                            );
                        }
                        rates.insert(
                            name.clone(),
                            probability_value(p, &pointer(&at_r, name), problems),
                        );
                    }
                }
                None => problems.push(at_r, "must be an object of rate name → probability"),
            }
        }
        let model = ArmModel {
            cycle_time,
            escalation,
            quality,
            ai_cost,
            touches,
            score,
            rates,
            handled_by,
            model_version,
        };
        for (metric, quantity) in metrics {
            let missing = match quantity {
                Quantity::CycleTime | Quantity::HumanMinutes | Quantity::Cost => {
                    model.cycle_time.is_none().then_some("cycle_time")
                }
                Quantity::Touches => model.touches.is_none().then_some("touches"),
                Quantity::Score => model.score.is_none().then_some("score"),
                Quantity::Rate(name) => (!model.rates.contains_key(name)).then_some("a rate"),
                Quantity::Escalated | Quantity::Quality | Quantity::AiCost => None,
            };
            if let Some(field) = missing {
                let field = match quantity {
                    Quantity::Rate(name) => format!("rates.{name}"),
                    _ => field.to_string(),
                };
                problems.push(
                    at.clone(),
                    format!("needs {field}, which metric {metric} is fed from"),
                );
            }
        }
        out.insert(arm.key().to_string(), model);
    }
    out
}
