"""What the sync and async clients share: settings, request bodies, retry decisions, problems, baselines.

Nothing here does IO: the two clients send the requests and sleep, and ask this module what
to send, how to read the answer and whether (and how long) to wait before trying again.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple, Union
from urllib.parse import quote

import httpx

from .errors import LiftlabError, LiftlabUnavailable, ProblemError
from .models import (
    Assignment,
    AttributeValue,
    FieldError,
    OutcomeAck,
    OutcomeEvent,
    WireError,
    canonical_json,
)

logger = logging.getLogger("liftlab_client")

__version__ = "0.1.0"

NDJSON = "application/x-ndjson"
# Stay well below the server's default JSON body limit (1 MiB); larger batches go as NDJSON.
MAX_JSON_BATCH_BYTES = 512 * 1024


@dataclass(frozen=True)
class Settings:
    """How a client talks to liftlab; see ``Client`` for what each setting means."""

    base_url: str
    api_key: Optional[str]
    timeout: float
    retries: int
    backoff: float
    max_backoff: float
    max_retry_after: float
    ndjson_threshold: int

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.retries < 0:
            raise ValueError("retries must be 0 or more")
        if self.backoff < 0 or self.max_backoff < 0 or self.max_retry_after < 0:
            raise ValueError("backoff, max_backoff and max_retry_after must be 0 or more")
        if self.ndjson_threshold < 1:
            raise ValueError("ndjson_threshold must be at least 1")

    def headers(self) -> Dict[str, str]:
        headers = {"user-agent": f"liftlab-client-python/{__version__}", "accept": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers


def request_headers(traceparent: Optional[str], content_type: Optional[str] = None) -> Dict[str, str]:
    """Per-request headers: the caller's W3C ``traceparent`` and the body's type."""
    headers: Dict[str, str] = {}
    if traceparent:
        headers["traceparent"] = traceparent
    if content_type:
        headers["content-type"] = content_type
    return headers


def experiment_path(experiment: str, tail: str = "") -> str:
    return f"/v1/experiments/{quote(experiment, safe='')}{tail}"


def assign_body(
    unit_id: str,
    task_id: Optional[str],
    attributes: Optional[Mapping[str, AttributeValue]],
) -> Dict[str, Any]:
    """The body of an assign request (``AssignRequest`` in the API spec)."""
    body: Dict[str, Any] = {"unit_id": unit_id}
    if task_id is not None:
        body["task_id"] = task_id
    if attributes:
        body["attributes"] = dict(attributes)
    return body


def outcomes_body(events: List[OutcomeEvent], ndjson_threshold: int) -> Tuple[bytes, str]:
    """The body of an outcomes request and its content type.

    Up to ``ndjson_threshold`` events that fit in ``MAX_JSON_BATCH_BYTES`` go as one
    ``{"events": [...]}`` document, anything larger as NDJSON (one event a line), which the
    server reads as a stream.
    """
    lines = [canonical_json(e.to_wire()) for e in events]
    if len(lines) <= ndjson_threshold:
        body = '{"events":[' + ",".join(lines) + "]}"
        encoded = body.encode("utf-8")
        if len(encoded) <= MAX_JSON_BATCH_BYTES:
            return encoded, "application/json"
    return ("\n".join(lines) + "\n").encode("utf-8"), NDJSON


def to_events(events: Iterable[Union[OutcomeEvent, Mapping[str, Any]]]) -> List[OutcomeEvent]:
    return [e if isinstance(e, OutcomeEvent) else OutcomeEvent.from_mapping(e) for e in events]


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        current = now if now is not None else time.time()
        seconds = when.timestamp() - current
    return max(0.0, seconds) if seconds == seconds else None


def backoff_delay(settings: Settings, attempt: int, retry_after: Optional[float]) -> float:
    """How long to wait before retry number ``attempt + 1``.

    Exponential backoff from ``backoff`` doubling up to ``max_backoff``, with jitter (half to
    all of it), but never less than the server's ``Retry-After`` (itself capped at
    ``max_retry_after``).
    """
    ceiling = min(settings.max_backoff, settings.backoff * 2.0 ** min(attempt, 32))
    delay = ceiling * (0.5 + random.random() / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.max_retry_after))
    return delay


def problem_of(response: httpx.Response) -> ProblemError:
    """The ``ProblemError`` an error answer stands for (problem+json, or whatever else came)."""
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        pass
    request_id = response.headers.get("x-request-id")
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if isinstance(body, Mapping) and "status" in body and "title" in body:
        errors = body.get("errors")
        return ProblemError(
            status=response.status_code,
            title=str(body.get("title", "")),
            detail=str(body.get("detail", "")),
            type=str(body.get("type", "about:blank")),
            errors=[FieldError.from_wire(e) for e in errors] if isinstance(errors, list) else [],
            request_id=request_id,
            retry_after=retry_after,
        )
    text = response.text.strip()
    return ProblemError(
        status=response.status_code,
        title=response.reason_phrase or "HTTP error",
        detail=text[:500] if text else f"HTTP {response.status_code} without a problem body",
        request_id=request_id,
        retry_after=retry_after,
    )


@dataclass(frozen=True)
class Step:
    """What to do after one attempt: return ``response``, raise ``error``, or wait ``delay`` and retry."""

    response: Optional[httpx.Response] = None
    error: Optional[LiftlabError] = None
    delay: Optional[float] = None
    why: str = ""


def retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def next_step(
    settings: Settings,
    attempt: int,
    outcome: Union[httpx.Response, httpx.RequestError],
    retry: bool,
) -> Step:
    """Judges one attempt. Connection errors, timeouts, 5xx and 429 are retried when ``retry``
    allows and retries are left; a 2xx is the answer; everything else becomes an error."""
    retries_left = retry and attempt < settings.retries
    if isinstance(outcome, httpx.RequestError):
        why = f"{type(outcome).__name__}: {outcome}" if str(outcome) else type(outcome).__name__
        if retries_left:
            return Step(delay=backoff_delay(settings, attempt, None), why=why)
        error = LiftlabUnavailable(f"liftlab at {settings.base_url} cannot be reached: {why}")
        error.__cause__ = outcome
        return Step(error=error)
    status = outcome.status_code
    if 200 <= status < 300:
        return Step(response=outcome)
    problem = problem_of(outcome)
    if retryable_status(status) and retries_left:
        return Step(delay=backoff_delay(settings, attempt, problem.retry_after), why=f"HTTP {status}")
    if status >= 500:
        unavailable = LiftlabUnavailable(f"liftlab answered {problem}", status=status)
        unavailable.__cause__ = problem
        return Step(error=unavailable)
    return Step(error=problem)


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as e:
        raise LiftlabUnavailable(
            f"the answer from {response.request.url} is not JSON (is base_url a liftlab server?)",
            status=response.status_code,
        ) from e


def read_assignment(response: httpx.Response) -> Assignment:
    try:
        return Assignment.from_wire(json_of(response))
    except WireError as e:
        raise LiftlabUnavailable(f"the assign answer is not liftlab's: {e}", status=response.status_code) from e


def read_ack(response: httpx.Response) -> OutcomeAck:
    try:
        return OutcomeAck.from_wire(json_of(response))
    except (WireError, KeyError, TypeError, ValueError) as e:
        raise LiftlabUnavailable(f"the outcomes answer is not liftlab's: {e}", status=response.status_code) from e


class Baselines:
    """The baseline arm of each experiment, as far as this client has learned it.

    It is learned from a configured mapping, from any answer outside the experiment (which
    is always the baseline arm), and once per experiment from the spec itself, which the
    client reads after the first answer inside the experiment.
    """

    def __init__(self, known: Optional[Mapping[str, str]] = None) -> None:
        self._arms: Dict[str, str] = dict(known or {})
        self._asked: Set[str] = set()
        self._lock = threading.Lock()

    def get(self, experiment: str) -> Optional[str]:
        return self._arms.get(experiment)

    def learn(self, experiment: str, arm: str) -> None:
        with self._lock:
            self._arms[experiment] = arm

    def learn_from(self, assignment: Assignment) -> None:
        if not assignment.in_experiment and not assignment.fallback:
            self.learn(assignment.experiment, assignment.arm)

    def should_ask(self, experiment: str) -> bool:
        """Whether to read the spec now: the baseline is unknown and it was never asked for."""
        with self._lock:
            if experiment in self._arms or experiment in self._asked:
                return False
            self._asked.add(experiment)
            return True

    def learn_from_spec(self, experiment: str, view: Any) -> None:
        """Learns the baseline from ``GET /v1/experiments/{key}`` (its ``spec.arms[].role``)."""
        spec = view.get("spec") if isinstance(view, Mapping) else None
        arms = spec.get("arms") if isinstance(spec, Mapping) else None
        for arm in arms if isinstance(arms, list) else []:
            if isinstance(arm, Mapping) and arm.get("role") == "baseline" and isinstance(arm.get("key"), str):
                self.learn(experiment, arm["key"])
                return


class FallbackWarnings:
    """Logs one warning per experiment at most every ``every`` seconds, the rest at debug level,
    so an outage does not flood a busy router's logs."""

    def __init__(self, every: float = 30.0) -> None:
        self._every = every
        self._last: Dict[str, float] = {}
        self._lock = threading.Lock()

    def log(self, experiment: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(experiment)
            loud = last is None or now - last >= self._every
            if loud:
                self._last[experiment] = now
        logger.log(logging.WARNING if loud else logging.DEBUG, message, *args)


def fallback(
    experiment: str,
    default_arm: Optional[str],
    baselines: Baselines,
    cause: LiftlabError,
    warnings: FallbackWarnings,
) -> Assignment:
    """The assignment served when liftlab cannot answer: ``default_arm``, else the known baseline.

    Raises ``LiftlabUnavailable`` (from ``cause``) when neither is known.
    """
    arm = default_arm if default_arm is not None else baselines.get(experiment)
    if arm is None:
        error = LiftlabUnavailable(
            f"cannot assign in `{experiment}` and no fallback arm is known "
            f"(pass default_arm= or baselines=): {cause}",
            status=getattr(cause, "status", None),
        )
        error.__cause__ = cause
        raise error
    warnings.log(
        experiment,
        "liftlab cannot assign in %s (%s); serving %s outside the experiment",
        experiment,
        cause,
        arm,
    )
    return Assignment.fallback_to(experiment, arm)


def falls_back(error: LiftlabError) -> bool:
    """Whether an assign error means "serve the fallback": unreachable, timed out, 5xx or 429."""
    return isinstance(error, LiftlabUnavailable) or (isinstance(error, ProblemError) and error.status == 429)


def encode(document: Any) -> bytes:
    """A JSON request body; raises ``ValueError`` for NaN or infinity, which JSON cannot carry."""
    return canonical_json(document).encode("utf-8")
