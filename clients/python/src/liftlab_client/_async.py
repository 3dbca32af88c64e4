"""``AsyncClient``: the asyncio liftlab client, with the same methods as ``Client`` (awaited)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Dict, Iterable, Mapping, Optional, Union

import httpx

from . import _core
from ._core import Baselines, FallbackWarnings, Settings, logger
from .errors import LiftlabError, LiftlabUnavailable
from .models import Assignment, AttributeValue, HandledBy, MetricValue, OutcomeAck, OutcomeEvent


class AsyncClient:
    """An asyncio liftlab client for a workflow router: ``Client``'s methods, awaited.

    ``AsyncClient(base_url, api_key=None, timeout=2.0)`` talks to the liftlab server at
    ``base_url`` (``http://127.0.0.1:8080``), sending ``api_key`` as a Bearer key (a key with
    the ``router`` role is enough for ``assign`` and ``record``; ``results`` needs ``viewer``).

    - ``timeout``: seconds for each network step (connect, send, wait for the answer).
    - ``retries``, ``backoff``, ``max_backoff``, ``max_retry_after``: outcomes and results are
      retried up to ``retries`` times on connection errors, timeouts, 5xx and 429, waiting
      ``backoff`` seconds doubling up to ``max_backoff`` (with jitter), and at least the
      server's ``Retry-After`` (capped at ``max_retry_after``). Assignments are never
      retried: they fall back instead, so the hot path never waits.
    - ``baselines``: experiment key → baseline arm, the fallback when ``assign`` has no
      ``default_arm`` and liftlab is out of reach before the client learned it.
    - ``ndjson_threshold``: ``record_many`` sends more events than this as NDJSON.
    - ``transport``: an ``httpx.AsyncBaseTransport`` (for tests, proxies or custom TLS).

    Use it as an async context manager (``async with AsyncClient(...) as client:``), or
    await ``aclose()``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: Optional[str] = None,
        timeout: float = 2.0,
        *,
        retries: int = 4,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        max_retry_after: float = 30.0,
        baselines: Optional[Mapping[str, str]] = None,
        ndjson_threshold: int = 500,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        self._settings = Settings(
            base_url=base_url.rstrip("/"),
            api_key=api_key,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            max_retry_after=max_retry_after,
            ndjson_threshold=ndjson_threshold,
        )
        self._http = httpx.AsyncClient(
            base_url=self._settings.base_url,
            headers=self._settings.headers(),
            timeout=timeout,
            transport=transport,
        )
        self._baselines = Baselines(baselines)
        self._warnings = FallbackWarnings()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the connection pool."""
        await self._http.aclose()

    def baseline(self, experiment: str) -> Optional[str]:
        """The baseline arm of ``experiment`` as far as this client knows it."""
        return self._baselines.get(experiment)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        retry: bool,
        content: Optional[bytes] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> httpx.Response:
        attempt = 0
        while True:
            outcome: Union[httpx.Response, httpx.RequestError]
            try:
                outcome = await self._http.request(method, path, content=content, headers=headers)
            except httpx.RequestError as e:
                outcome = e
            step = _core.next_step(self._settings, attempt, outcome, retry)
            if step.response is not None:
                return step.response
            if step.error is not None:
                raise step.error
            assert step.delay is not None
            logger.warning(
                "liftlab %s %s failed (%s); retry %d of %d in %.2f s",
                method,
                path,
                step.why,
                attempt + 1,
                self._settings.retries,
                step.delay,
            )
            await asyncio.sleep(step.delay)
            attempt += 1

    async def assign(
        self,
        experiment: str,
        unit_id: str,
        *,
        task_id: Optional[str] = None,
        attributes: Optional[Mapping[str, AttributeValue]] = None,
        default_arm: Optional[str] = None,
        traceparent: Optional[str] = None,
    ) -> Assignment:
        """Decides the arm for ``unit_id`` (sticky: a returning unit gets its stored arm).

        When liftlab cannot be reached, times out, answers 5xx or 429, this returns
        ``default_arm`` (or the experiment's known baseline) with ``in_experiment=False`` and
        ``fallback=True`` and logs a warning; without either it raises ``LiftlabUnavailable``.
        A 4xx problem (unknown experiment, bad input, a task id another unit holds) raises
        ``ProblemError``.
        """
        body = _core.assign_body(unit_id, task_id, attributes)
        try:
            response = await self._send(
                "POST",
                _core.experiment_path(experiment, "/assign"),
                retry=False,
                content=_core.encode(body),
                headers=_core.request_headers(traceparent, "application/json"),
            )
            answer = _core.read_assignment(response)
        except LiftlabError as e:
            if not _core.falls_back(e):
                raise
            return _core.fallback(experiment, default_arm, self._baselines, e, self._warnings)
        self._baselines.learn_from(answer)
        if answer.in_experiment and self._baselines.should_ask(experiment):
            await self._learn_baseline(experiment, traceparent)
        return answer

    async def _learn_baseline(self, experiment: str, traceparent: Optional[str]) -> None:
        try:
            response = await self._send(
                "GET",
                _core.experiment_path(experiment),
                retry=False,
                headers=_core.request_headers(traceparent),
            )
            self._baselines.learn_from_spec(experiment, _core.json_of(response))
        except LiftlabError as e:
            logger.debug("cannot read the spec of %s to learn its baseline: %s", experiment, e)

    async def record(
        self,
        experiment: str,
        task_id: str,
        metrics: Mapping[str, MetricValue],
        *,
        event_id: Optional[str] = None,
        ts: Optional[Union[str, datetime]] = None,
        handled_by: Optional[HandledBy] = None,
        model_version: Optional[str] = None,
        attributes: Optional[Mapping[str, str]] = None,
        traceparent: Optional[str] = None,
    ) -> OutcomeAck:
        """Records one outcome of the task ``task_id`` (the correlation id given at assignment).

        Without ``event_id`` the event gets a stable id from its content, so sending it again
        is counted once. Retried on connection errors, 5xx and 429; an invalid event raises
        ``ProblemError`` (status 422) whose ``errors`` point into the event (``/metrics/x``).
        """
        event = OutcomeEvent(
            experiment=experiment,
            task_id=task_id,
            metrics=metrics,
            event_id=event_id,
            ts=ts,
            handled_by=handled_by,
            model_version=model_version,
            attributes=attributes,
        )
        response = await self._send(
            "POST",
            "/v1/outcomes",
            retry=True,
            content=_core.encode(event.to_wire()),
            headers=_core.request_headers(traceparent, "application/json"),
        )
        return _core.read_ack(response)

    async def record_many(
        self,
        events: Iterable[Union[OutcomeEvent, Mapping[str, Any]]],
        *,
        traceparent: Optional[str] = None,
    ) -> OutcomeAck:
        """Records a batch of events (``OutcomeEvent``s or dicts with its fields) in one request.

        Each event is judged alone: invalid ones come back in ``rejected`` by index. A batch
        in which nothing is valid raises ``ProblemError`` (422) with pointers such as
        ``/events/3/metrics/x`` (``/3/...`` for NDJSON). Large batches go as NDJSON.
        """
        batch = _core.to_events(events)
        if not batch:
            return OutcomeAck(accepted=0, duplicates=0, rejected=[])
        body, content_type = _core.outcomes_body(batch, self._settings.ndjson_threshold)
        response = await self._send(
            "POST",
            "/v1/outcomes",
            retry=True,
            content=body,
            headers=_core.request_headers(traceparent, content_type),
        )
        return _core.read_ack(response)

    async def results(self, experiment: str, *, traceparent: Optional[str] = None) -> Dict[str, Any]:
        """The experiment's results JSON (see the API spec's ``Results`` schema)."""
        response = await self._send(
            "GET",
            _core.experiment_path(experiment, "/results"),
            retry=True,
            headers=_core.request_headers(traceparent),
        )
        data = _core.json_of(response)
        if not isinstance(data, dict):
            raise LiftlabUnavailable("the results answer is not a JSON object")
        return data
