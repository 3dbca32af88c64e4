"""The client's data: assignments, outcome events with stable ids, and the server's acknowledgements.

Each model mirrors a schema of ``api-spec/openapi.yaml`` (``Assignment``, ``OutcomeEvent``,
``OutcomeSummary``, ``FieldError``); ``tests/test_openapi.py`` keeps their field names and
required fields in step with it.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Literal, Mapping, Optional, Tuple, Union

#: Who handled a task, as outcomes report it.
HandledBy = Literal["ai", "human", "hybrid"]
#: A metric value: a number, or a yes/no for binary metrics.
MetricValue = Union[bool, int, float]
#: An assignment attribute: text or a number (for targeting, segments and covariates).
AttributeValue = Union[str, int, float]

#: The fields an assign answer must carry (``Assignment.required`` in the API spec).
ASSIGNMENT_REQUIRED: Tuple[str, ...] = (
    "experiment",
    "arm",
    "in_experiment",
    "version",
    "assignment_id",
    "propensity",
)
#: The fields an outcome acknowledgement must carry (``OutcomeSummary.required``).
OUTCOME_ACK_REQUIRED: Tuple[str, ...] = ("accepted", "duplicates", "rejected")

# The namespace of the name-based (version 5) UUIDs that serve as stable event ids.
_EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://liftlab.dev/client/outcome-event")


class WireError(ValueError):
    """An answer that does not have the shape the API spec promises."""


@dataclass(frozen=True)
class FieldError:
    """One problem in a request: an RFC 6901 JSON pointer and what is wrong there."""

    pointer: str
    message: str

    @classmethod
    def from_wire(cls, data: Any) -> "FieldError":
        if not isinstance(data, Mapping):
            raise WireError(f"a field error must be an object, not {data!r}")
        return cls(pointer=str(data.get("pointer", "")), message=str(data.get("message", "")))


@dataclass(frozen=True)
class Assignment:
    """The arm a unit is served.

    ``in_experiment`` is false when the unit is outside the experiment (``reason`` says why:
    ``not_running``, ``not_targeted`` or ``outside_coverage``) and when liftlab could not be
    asked (``fallback`` is true; ``version`` and ``assignment_id`` are then ``None``). Only
    units with ``in_experiment`` true are counted in the results. ``propensity`` is the
    probability with which the unit was placed in its arm (1 outside the experiment).
    """

    experiment: str
    arm: str
    in_experiment: bool
    version: Optional[int]
    assignment_id: Optional[str]
    propensity: float
    reason: Optional[str] = None
    fallback: bool = False

    @classmethod
    def from_wire(cls, data: Any) -> "Assignment":
        """Reads an assign answer; raises ``WireError`` when a required field is missing or mistyped."""
        if not isinstance(data, Mapping):
            raise WireError("an assignment must be a JSON object")
        missing = [k for k in ASSIGNMENT_REQUIRED if k not in data]
        if missing:
            raise WireError(f"the assignment lacks {', '.join(missing)}")
        checks = (
            ("experiment", str),
            ("arm", str),
            ("in_experiment", bool),
            ("version", int),
            ("assignment_id", str),
            ("propensity", (int, float)),
        )
        for name, kind in checks:
            value = data[name]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise WireError(f"the assignment's {name} has the wrong type: {value!r}")
        reason = data.get("reason")
        return cls(
            experiment=data["experiment"],
            arm=data["arm"],
            in_experiment=data["in_experiment"],
            version=data["version"],
            assignment_id=data["assignment_id"],
            propensity=float(data["propensity"]),
            reason=reason if isinstance(reason, str) else None,
        )

    @classmethod
    def fallback_to(cls, experiment: str, arm: str) -> "Assignment":
        """The answer served when liftlab cannot be asked: ``arm`` outside the experiment."""
        return cls(
            experiment=experiment,
            arm=arm,
            in_experiment=False,
            version=None,
            assignment_id=None,
            propensity=1.0,
            reason=None,
            fallback=True,
        )


def _rfc3339(ts: Union[str, datetime]) -> str:
    if isinstance(ts, str):
        return ts
    if ts.tzinfo is None:
        # A naive datetime is taken as UTC, as `datetime.utcnow()` makes them.
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces; raises ``ValueError`` for NaN or infinity."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def stable_event_id(content: Mapping[str, Any]) -> str:
    """The event id of an outcome without one: a UUID 5 of the event's canonical JSON.

    The same experiment, task, metrics, time, handler, model version and attributes always
    give the same id, so sending an event again (a retry by this client, or by the caller
    after an error) is acknowledged as a duplicate and counted once.
    """
    return str(uuid.uuid5(_EVENT_NAMESPACE, canonical_json(dict(content))))


@dataclass(frozen=True)
class OutcomeEvent:
    """What happened to one task, to be recorded against the arm its task was served.

    Without ``event_id`` the event gets a stable one, computed once here from its content
    (see :func:`stable_event_id`): two events for one task with the same content and no
    ``ts`` are then one event; give each its own ``event_id`` (or ``ts``) if they are not.
    ``ts`` is an RFC 3339 string or a ``datetime`` (naive ones are taken as UTC); without
    it the server stamps the time of receipt.
    """

    experiment: str
    task_id: str
    metrics: Mapping[str, MetricValue]
    event_id: Optional[str] = None
    ts: Optional[Union[str, datetime]] = None
    handled_by: Optional[HandledBy] = None
    model_version: Optional[str] = None
    attributes: Optional[Mapping[str, str]] = None
    _wire: Dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, value in self.metrics.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"metric {name!r} must be finite, not {value!r}")
        wire: Dict[str, Any] = {
            "experiment": self.experiment,
            "task_id": self.task_id,
            "metrics": dict(self.metrics),
        }
        if self.ts is not None:
            wire["ts"] = _rfc3339(self.ts)
        if self.handled_by is not None:
            wire["handled_by"] = self.handled_by
        if self.model_version is not None:
            wire["model_version"] = self.model_version
        if self.attributes:
            wire["attributes"] = dict(self.attributes)
        event_id = self.event_id if self.event_id is not None else stable_event_id(wire)
        object.__setattr__(self, "event_id", event_id)
        object.__setattr__(self, "_wire", {"event_id": event_id, **wire})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "OutcomeEvent":
        """An event from a dict with the fields of the API's ``OutcomeEvent``."""
        unknown = set(data) - _EVENT_FIELDS
        if unknown:
            raise TypeError(f"unknown outcome event fields: {', '.join(sorted(unknown))}")
        return cls(**data)

    def to_wire(self) -> Dict[str, Any]:
        """The event as the API takes it (only the fields that are set)."""
        return dict(self._wire)


_EVENT_FIELDS = {
    "experiment",
    "task_id",
    "metrics",
    "event_id",
    "ts",
    "handled_by",
    "model_version",
    "attributes",
}


@dataclass(frozen=True)
class Rejected:
    """An event that was not recorded: its position in what was sent (from 0) and every problem."""

    index: int
    errors: List[FieldError]


@dataclass(frozen=True)
class OutcomeAck:
    """The server's answer to outcomes: how many were new, how many it had already, which it refused.

    After a retry, events that the lost attempt had recorded come back as ``duplicates``.
    """

    accepted: int
    duplicates: int
    rejected: List[Rejected]

    @classmethod
    def from_wire(cls, data: Any) -> "OutcomeAck":
        if not isinstance(data, Mapping):
            raise WireError("an outcome summary must be a JSON object")
        missing = [k for k in OUTCOME_ACK_REQUIRED if k not in data]
        if missing:
            raise WireError(f"the outcome summary lacks {', '.join(missing)}")
        rejected = data["rejected"]
        if not isinstance(rejected, list):
            raise WireError("the outcome summary's rejected must be a list")
        return cls(
            accepted=int(data["accepted"]),
            duplicates=int(data["duplicates"]),
            rejected=[
                Rejected(
                    index=int(r["index"]),
                    errors=[FieldError.from_wire(e) for e in r.get("errors", [])],
                )
                for r in rejected
            ],
        )
