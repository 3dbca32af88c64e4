//! What varies a scenario's model: who handles a task, the traffic mixes, segment multipliers, the effort attribute, drift and mix changes.

use super::validate::{
    non_negative, number, opt_string, pointer, positive_number, probability_value, unknown_fields,
    whole, Problems,
};
use super::*;

pub(super) fn parse_handled_mix(
    v: &Value,
    at: &str,
    problems: &mut Problems,
) -> Vec<(HandledBy, f64)> {
    let Some(object) = v.as_object().filter(|o| !o.is_empty()) else {
        problems.push(
            at,
            "must be an object like {\"ai\": 0.7, \"hybrid\": 0.2, \"human\": 0.1}",
        );
        return vec![(HandledBy::Human, 1.0)];
    };
    let mut mix = Vec::new();
    for (who, p) in object {
        match handled_by(who) {
            Some(w) => mix.push((w, probability_value(p, &pointer(at, who), problems))),
            None => problems.push(pointer(at, who), "must be ai, human or hybrid"),
        }
    }
    check_sum(mix.iter().map(|(_, p)| *p), at, problems);
    mix
}

pub(super) fn check_sum(shares: impl Iterator<Item = f64>, at: &str, problems: &mut Problems) {
    let sum: f64 = shares.sum();
    if (sum - 1.0).abs() > 1e-9 {
        problems.push(at, format!("shares must sum to 1, not {sum}"));
    }
}

pub(super) fn parse_mix(v: &Value, at: &str, problems: &mut Problems) -> Vec<(String, f64)> {
    let Some(object) = v.as_object().filter(|o| !o.is_empty()) else {
        problems.push(at, "must be an object of value → share");
        return Vec::new();
    };
    let mix: Vec<(String, f64)> = object
        .iter()
        .map(|(value, share)| {
            (
                value.clone(),
                probability_value(share, &pointer(at, value), problems),
            )
        })
        .collect();
    check_sum(mix.iter().map(|(_, p)| *p), at, problems);
    mix
}

pub(super) fn parse_multipliers(
    v: &Value,
    at: &str,
    rates: &[String],
    problems: &mut Problems,
) -> Multipliers {
    let mut m = Multipliers::default();
    let Some(object) = v.as_object() else {
        problems.push(at, "must be an object of parameter → factor");
        return m;
    };
    for (name, factor) in object {
        let at = pointer(at, name);
        match Param::parse(name, rates) {
            Some(p) => match number(factor, &at, problems) {
                Some(f) if f >= 0.0 => {
                    m.0.insert(p, f);
                }
                Some(_) => problems.push(at, "must be ≥ 0"),
                None => {}
            },
            None => problems.push(
                at,
                format!(
                    "unknown parameter; use one of {}",
                    Param::BUILTIN
                        .iter()
                        .map(|p| p.name().to_string())
                        .chain(rates.iter().cloned())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }
    m
}

pub(super) fn parse_effort(
    v: &Value,
    attributes: &BTreeMap<String, String>,
    segments: &[SegmentAttribute],
    problems: &mut Problems,
) -> Option<Effort> {
    let Some(object) = v.as_object() else {
        problems.push(
            "/effort",
            "must be an object: {\"attribute\", \"mean\", \"sigma\"}",
        );
        return None;
    };
    unknown_fields(object, "/effort", &["attribute", "mean", "sigma"], problems);
    let attribute = match object.get("attribute").and_then(Value::as_str) {
        Some(a) if !a.is_empty() => a.to_string(),
        _ => {
            problems.push("/effort/attribute", "is required: the attribute name");
            return None;
        }
    };
    if attributes.contains_key(&attribute) || segments.iter().any(|s| s.attribute == attribute) {
        problems.push(
            "/effort/attribute",
            "is already a constant or segment attribute",
        );
    }
    let mean = match object.get("mean") {
        Some(m) => positive_number(Some(m), "/effort/mean", 1.0, problems),
        None => {
            problems.push("/effort/mean", "is required: the estimate's mean");
            1.0
        }
    };
    let sigma = match object.get("sigma") {
        Some(x) => non_negative(x, "/effort/sigma", problems),
        None => 0.5,
    };
    Some(Effort {
        attribute,
        mean,
        sigma,
    })
}

pub(super) fn parse_segments(
    v: &Value,
    spec: &ExperimentSpec,
    rates: &[String],
    problems: &mut Problems,
) -> Vec<SegmentAttribute> {
    let Some(items) = v.as_array() else {
        problems.push("/segments", "must be an array");
        return Vec::new();
    };
    let mut out: Vec<SegmentAttribute> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("/segments/{i}");
        let Some(object) = item.as_object() else {
            problems.push(at, "must be an object");
            continue;
        };
        unknown_fields(object, &at, &["attribute", "mix", "effects"], problems);
        let Some(attribute) = object.get("attribute").and_then(Value::as_str) else {
            problems.push(pointer(&at, "attribute"), "is required: the attribute name");
            continue;
        };
        if out.iter().any(|s| s.attribute == attribute) {
            problems.push(pointer(&at, "attribute"), "is listed twice");
        }
        let mix = match object.get("mix") {
            Some(m) => parse_mix(m, &pointer(&at, "mix"), problems),
            None => {
                problems.push(pointer(&at, "mix"), "is required: value → share");
                Vec::new()
            }
        };
        let mut effects = BTreeMap::new();
        if let Some(e) = object.get("effects") {
            let at_e = pointer(&at, "effects");
            match e.as_object() {
                Some(by_value) => {
                    for (value, by_arm) in by_value {
                        let at_v = pointer(&at_e, value);
                        if !mix.iter().any(|(v, _)| v == value) {
                            problems.push(at_v.clone(), "is not a value of the mix");
                        }
                        let Some(by_arm) = by_arm.as_object() else {
                            problems.push(at_v, "must be an object of arm → multipliers");
                            continue;
                        };
                        let mut arms = BTreeMap::new();
                        for (arm, m) in by_arm {
                            let at_a = pointer(&at_v, arm);
                            if spec.arm(arm).is_none() {
                                problems.push(at_a.clone(), "is not an arm of the spec");
                            }
                            arms.insert(arm.clone(), parse_multipliers(m, &at_a, rates, problems));
                        }
                        effects.insert(value.clone(), arms);
                    }
                }
                None => problems.push(at_e, "must be an object of value → arm → multipliers"),
            }
        }
        out.push(SegmentAttribute {
            attribute: attribute.to_string(),
            mix,
            effects,
        });
    }
    out
}

pub(super) fn parse_drift(
    v: &Value,
    spec: &ExperimentSpec,
    tasks: usize,
    rates: &[String],
    problems: &mut Problems,
) -> Vec<DriftEvent> {
    let Some(items) = v.as_array() else {
        problems.push("/drift", "must be an array");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("/drift/{i}");
        let Some(object) = item.as_object() else {
            problems.push(at, "must be an object");
            continue;
        };
        unknown_fields(
            object,
            &at,
            &["at_task", "arm", "multiply", "model_version"],
            problems,
        );
        let at_task = match object.get("at_task") {
            Some(v) => whole(v, &pointer(&at, "at_task"), 0, 10_000_000, problems),
            None => {
                problems.push(
                    pointer(&at, "at_task"),
                    "is required: the task index the change starts at",
                );
                0
            }
        };
        if at_task >= tasks && tasks > 0 {
            problems.push(
                pointer(&at, "at_task"),
                format!("must be below the number of tasks ({tasks})"),
            );
        }
        let arm = match object.get("arm") {
            None => None,
            Some(Value::String(a)) if spec.arm(a).is_some() => Some(a.clone()),
            Some(_) => {
                problems.push(pointer(&at, "arm"), "must be an arm of the spec");
                None
            }
        };
        let multiply = match object.get("multiply") {
            Some(m) => parse_multipliers(m, &pointer(&at, "multiply"), rates, problems),
            None => {
                problems.push(pointer(&at, "multiply"), "is required: parameter → factor");
                Multipliers::default()
            }
        };
        let model_version = opt_string(object, &at, "model_version", problems);
        out.push(DriftEvent {
            at_task,
            arm,
            multiply,
            model_version,
        });
    }
    out.sort_by_key(|d| d.at_task);
    out
}

pub(super) fn parse_mix_changes(
    v: &Value,
    segments: &[SegmentAttribute],
    tasks: usize,
    problems: &mut Problems,
) -> Vec<MixChange> {
    let Some(items) = v.as_array() else {
        problems.push("/mix_changes", "must be an array");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("/mix_changes/{i}");
        let Some(object) = item.as_object() else {
            problems.push(at, "must be an object");
            continue;
        };
        unknown_fields(object, &at, &["at_task", "attribute", "mix"], problems);
        let at_task = match object.get("at_task") {
            Some(v) => whole(v, &pointer(&at, "at_task"), 0, 10_000_000, problems),
            None => {
                problems.push(pointer(&at, "at_task"), "is required");
                0
            }
        };
        if at_task >= tasks && tasks > 0 {
            problems.push(
                pointer(&at, "at_task"),
                format!("must be below the number of tasks ({tasks})"),
            );
        }
        let Some(attribute) = object.get("attribute").and_then(Value::as_str) else {
            problems.push(
                pointer(&at, "attribute"),
                "is required: a segment attribute of the scenario",
            );
            continue;
        };
        let Some(segment) = segments.iter().find(|s| s.attribute == attribute) else {
            problems.push(
                pointer(&at, "attribute"),
                "is not a segment attribute of the scenario",
            );
            continue;
        };
        let mix = match object.get("mix") {
            Some(m) => parse_mix(m, &pointer(&at, "mix"), problems),
            None => {
                problems.push(pointer(&at, "mix"), "is required");
                Vec::new()
            }
        };
        for (value, _) in &mix {
            if !segment.mix.iter().any(|(v, _)| v == value) {
                problems.push(
                    pointer(&pointer(&at, "mix"), value),
                    "is not a value of the attribute's mix",
                );
            }
        }
        out.push(MixChange {
            at_task,
            attribute: attribute.to_string(),
            mix,
        });
    }
    out.sort_by_key(|c| c.at_task);
    out
}
