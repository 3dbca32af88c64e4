//! The API's response shapes and small parsers of path and header values; they mirror
//! `api-spec/openapi.yaml`, and the domain's records are mapped onto them here and nowhere else.

use actix_web::http::header::{self, HeaderMap};
use liftlab_domain::lifecycle::Change;
use liftlab_domain::spec::is_slug;
use liftlab_domain::{Assignment, ExperimentVersion, Millis, OutReason, Status};
use liftlab_store::{AuditRecord, Epoch, VerifyReport};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::ApiError;

/// The current time in Unix milliseconds.
pub fn now_millis() -> Millis {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    Millis::try_from(nanos / 1_000_000).unwrap_or(Millis::MAX)
}

/// Formats Unix milliseconds as RFC 3339 (UTC); out-of-range values print as the number.
pub fn rfc3339(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// A path's experiment key, checked to be a slug.
pub fn experiment_key(raw: String) -> Result<String, ApiError> {
    if is_slug(&raw) {
        Ok(raw)
    } else {
        Err(ApiError::BadRequest(format!(
            "`{}` is not an experiment key (keys match [a-z0-9][a-z0-9_-]{{0,63}})",
            raw.chars().take(80).collect::<String>()
        )))
    }
}

/// The version an `If-Match` header asks for: `"3"`, `W/"3"` or `3`; `*` means any.
pub fn if_match_version(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::BadRequest("If-Match is not valid text".to_string()))?
        .trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text);
    let tag = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag);
    tag.parse::<u64>().map(Some).map_err(|_| {
        ApiError::BadRequest(format!(
            "If-Match must name one version as an entity tag like \"3\", got `{text}`"
        ))
    })
}

/// The entity tag of a version.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

fn status_str(status: Status) -> &'static str {
    match status {
        Status::Draft => "draft",
        Status::Running => "running",
        Status::Paused => "paused",
        Status::Stopped => "stopped",
    }
}

fn change_str(change: &Change) -> &'static str {
    use liftlab_domain::Transition;
    match change {
        Change::Created => "created",
        Change::SpecUpdated => "spec_updated",
        Change::Status(Transition::Start) => "started",
        Change::Status(Transition::Pause) => "paused",
        Change::Status(Transition::Stop) => "stopped",
        Change::Rebaselined { .. } => "rebaselined",
    }
}

/// One version of an experiment: `GET /v1/experiments/{key}` and every write's answer.
#[derive(Debug, Serialize)]
pub struct ExperimentView {
    pub key: String,
    pub version: u64,
    pub status: &'static str,
    pub spec: serde_json::Value,
    pub changed_at: String,
    pub change: &'static str,
    pub reason: Option<String>,
}

impl From<&ExperimentVersion> for ExperimentView {
    fn from(v: &ExperimentVersion) -> Self {
        ExperimentView {
            key: v.key.clone(),
            version: v.version,
            status: status_str(v.status),
            spec: v.spec.to_json(),
            changed_at: rfc3339(v.created_at),
            change: change_str(&v.change),
            reason: v.reason.clone(),
        }
    }
}

/// One row of `GET /v1/experiments`.
#[derive(Debug, Serialize)]
pub struct ExperimentSummary {
    pub key: String,
    pub name: String,
    pub status: &'static str,
    pub version: u64,
    pub policy: &'static str,
    pub changed_at: String,
}

impl From<&ExperimentVersion> for ExperimentSummary {
    fn from(v: &ExperimentVersion) -> Self {
        ExperimentSummary {
            key: v.key.clone(),
            name: v.spec.name().to_string(),
            status: status_str(v.status),
            version: v.version,
            policy: v.spec.allocation().policy(),
            changed_at: rfc3339(v.created_at),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ExperimentList {
    pub experiments: Vec<ExperimentSummary>,
}

#[derive(Debug, Serialize)]
pub struct VersionList {
    pub experiment: String,
    pub versions: Vec<ExperimentView>,
}

/// The answer to `POST …/rebaseline`.
#[derive(Debug, Serialize)]
pub struct EpochView {
    pub experiment: String,
    pub epoch: u64,
    pub reason: String,
    pub started_at: String,
    pub version: u64,
}

impl From<&Epoch> for EpochView {
    fn from(e: &Epoch) -> Self {
        EpochView {
            experiment: e.experiment.clone(),
            epoch: e.epoch,
            reason: e.reason.clone(),
            started_at: rfc3339(e.started_at),
            version: e.version,
        }
    }
}

/// The answer to `POST …/assign`.
#[derive(Debug, Serialize)]
pub struct AssignView {
    pub experiment: String,
    pub arm: String,
    pub in_experiment: bool,
    pub version: u64,
    pub assignment_id: String,
    pub propensity: f64,
    /// Why the unit is not in the experiment; absent when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<OutReason>,
}

impl AssignView {
    /// The answer `a`, with the reason it is outside the experiment (if it is).
    pub fn new(a: &Assignment, reason: Option<OutReason>) -> Self {
        AssignView {
            experiment: a.experiment.clone(),
            arm: a.arm.clone(),
            in_experiment: a.in_experiment,
            version: a.version,
            assignment_id: a.assignment_id.clone(),
            propensity: a.propensity,
            reason,
        }
    }
}

/// One link of the audit chain as the API shows it; `payload` is the exact hashed text.
#[derive(Debug, Serialize)]
pub struct AuditView {
    pub seq: u64,
    pub prev_hash: String,
    pub kind: &'static str,
    pub experiment: String,
    pub payload: String,
    pub ts: String,
    pub ts_ms: Millis,
    pub hash: String,
}

impl From<AuditRecord> for AuditView {
    fn from(r: AuditRecord) -> Self {
        AuditView {
            seq: r.seq,
            prev_hash: r.prev_hash,
            kind: r.kind.as_str(),
            experiment: r.experiment,
            payload: r.payload,
            ts: rfc3339(r.ts),
            ts_ms: r.ts,
            hash: r.hash,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AuditPage {
    pub experiment: String,
    pub records: Vec<AuditView>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

/// The answer to `GET /v1/audit/verify`.
#[derive(Debug, Serialize)]
pub struct VerifyView {
    pub ok: bool,
    pub records: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<VerifyReport> for VerifyView {
    fn from(r: VerifyReport) -> Self {
        VerifyView {
            ok: r.ok,
            records: r.records,
            first_bad: r.first_bad,
            reason: r.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    #[test]
    fn rfc3339_round_trips_milliseconds() {
        use liftlab_domain::outcome::parse_rfc3339;
        let ms = parse_rfc3339("2025-01-31T12:00:00.250Z").expect("valid");
        assert_eq!(ms, 1_738_324_800_250);
        assert_eq!(parse_rfc3339(&rfc3339(ms)), Ok(ms));
    }

    fn if_match(value: &str) -> Result<Option<u64>, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_MATCH,
            HeaderValue::from_str(value).expect("header"),
        );
        if_match_version(&headers)
    }

    #[test]
    fn if_match_accepts_strong_weak_and_bare_tags() {
        assert_eq!(if_match("\"3\"").ok(), Some(Some(3)));
        assert_eq!(if_match("W/\"4\"").ok(), Some(Some(4)));
        assert_eq!(if_match("5").ok(), Some(Some(5)));
        assert_eq!(if_match("*").ok(), Some(None));
        assert!(if_match("\"abc\"").is_err());
        assert_eq!(if_match_version(&HeaderMap::new()).ok(), Some(None));
    }

    #[test]
    fn experiment_keys_must_be_slugs() {
        assert!(experiment_key("triage-v2".to_string()).is_ok());
        assert!(experiment_key("Triage".to_string()).is_err());
        assert!(experiment_key("a".repeat(65)).is_err());
        assert!(experiment_key(String::new()).is_err());
    }
}
