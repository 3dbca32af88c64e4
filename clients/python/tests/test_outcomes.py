"""Outcomes against the real server: exact counts after lost answers and retries, NDJSON, problems."""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

import httpx
import pytest

from conftest import LiftlabServer, metric_arms
from liftlab_client import AsyncClient, Client, FieldError, LiftlabUnavailable, OutcomeEvent, ProblemError


class LosingTransport(httpx.HTTPTransport):
    """Delivers every request, but loses the answers to the first `lose` outcome posts.

    That is the case retries exist for: the server recorded the events, the client never
    heard so, and sends them again.
    """

    def __init__(self, lose: int = 0) -> None:
        super().__init__()
        self.lose = lose
        self.posts: List[Tuple[str, bytes]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path == "/v1/outcomes":
            self.posts.append((request.headers.get("content-type", ""), request.content))
            if self.lose > 0:
                self.lose -= 1
                response.read()
                response.close()
                raise httpx.ReadError("the connection dropped before the answer arrived", request=request)
        return response


class AsyncLosingTransport(httpx.AsyncHTTPTransport):
    """`LosingTransport` for the async client."""

    def __init__(self, lose: int = 0) -> None:
        super().__init__()
        self.lose = lose
        self.posts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.url.path == "/v1/outcomes":
            self.posts += 1
            if self.lose > 0:
                self.lose -= 1
                await response.aread()
                await response.aclose()
                raise httpx.ReadError("the connection dropped before the answer arrived", request=request)
        return response


def workload(client: Client, experiment: str, n: int) -> Tuple[Dict[str, str], List[OutcomeEvent]]:
    """Assigns n tasks; each gets two cost events (summed per task) and a resolved flag."""
    arms = {f"task-{i}": client.assign(experiment, f"task-{i}").arm for i in range(n)}
    events: List[OutcomeEvent] = []
    for i, task in enumerate(arms):
        events.append(OutcomeEvent(experiment, task, {"cost": 1.0 + i * 0.5, "resolved": i % 3 == 0}))
        events.append(OutcomeEvent(experiment, task, {"cost": 0.25 * (i % 4)}, handled_by="ai"))
    return arms, events


def expected(arms: Dict[str, str], events: List[OutcomeEvent]) -> Dict[str, Dict[str, float]]:
    """Per arm: units and mean of the per-task cost sums, and the share resolved."""
    cost: Dict[str, float] = {}
    resolved: Dict[str, float] = {}
    for e in events:
        cost[e.task_id] = cost.get(e.task_id, 0.0) + float(e.metrics["cost"])
        if "resolved" in e.metrics:
            resolved[e.task_id] = float(e.metrics["resolved"])
    out: Dict[str, Dict[str, float]] = {}
    for arm in set(arms.values()):
        tasks = [t for t, a in arms.items() if a == arm]
        out[arm] = {
            "n": len(tasks),
            "cost": sum(cost[t] for t in tasks) / len(tasks),
            "resolved": sum(resolved[t] for t in tasks) / len(tasks),
        }
    return out


def assert_results_match(server: LiftlabServer, experiment: str, want: Dict[str, Dict[str, float]]) -> None:
    results = server.call("GET", f"/v1/experiments/{experiment}/results")
    cost = metric_arms(results, "cost")
    resolved = metric_arms(results, "resolved")
    for arm, w in want.items():
        assert cost[arm]["n"] == w["n"], (arm, cost[arm])
        # A double-counted event would add its cost to its task's sum again.
        assert cost[arm]["mean"] == pytest.approx(w["cost"], rel=1e-12), (arm, cost[arm])
        assert resolved[arm]["n"] == w["n"]
        assert resolved[arm]["mean"] == pytest.approx(w["resolved"], rel=1e-12)


def test_a_batch_whose_answers_were_lost_is_counted_exactly_once(server: LiftlabServer, experiment: str) -> None:
    transport = LosingTransport(lose=2)
    with Client(server.base_url, backoff=0.01, transport=transport) as client:
        arms, events = workload(client, experiment, 30)
        ack = client.record_many(events)
    # Three sends of one body: the first recorded everything, so the third finds duplicates only.
    assert len(transport.posts) == 3
    assert len({body for _, body in transport.posts}) == 1
    assert (ack.accepted, ack.duplicates, ack.rejected) == (0, 60, [])
    assert_results_match(server, experiment, expected(arms, events))


def test_single_events_are_retried_with_their_ids_and_the_caller_may_retry_too(
    server: LiftlabServer, experiment: str
) -> None:
    with Client(server.base_url, retries=1, backoff=0.01, transport=LosingTransport(lose=1)) as client:
        arms, events = workload(client, experiment, 12)
        first = client.record(experiment, events[0].task_id, dict(events[0].metrics))
        assert (first.accepted, first.duplicates) == (0, 1)
    # Out of retries: the client gives up, though the server did record the event.
    losing = LosingTransport(lose=2)
    with Client(server.base_url, retries=1, backoff=0.01, transport=losing) as client:
        e = events[1]
        with pytest.raises(LiftlabUnavailable):
            client.record(experiment, e.task_id, dict(e.metrics), handled_by=e.handled_by)
        # The caller tries again later with the same content: the same id, so counted once.
        again = client.record(experiment, e.task_id, dict(e.metrics), handled_by=e.handled_by)
        assert (again.accepted, again.duplicates) == (0, 1)
        assert len({body for _, body in losing.posts}) == 1
        for e in events[2:]:
            ack = client.record(experiment, e.task_id, dict(e.metrics), event_id=e.event_id, handled_by=e.handled_by)
            assert (ack.accepted, ack.duplicates) == (1, 0)
    assert_results_match(server, experiment, expected(arms, events))


@pytest.mark.anyio
async def test_the_async_client_retries_lost_answers_and_counts_exactly(server: LiftlabServer, experiment: str) -> None:
    with Client(server.base_url) as sync:
        arms, events = workload(sync, experiment, 20)
    transport = AsyncLosingTransport(lose=1)
    async with AsyncClient(server.base_url, backoff=0.01, transport=transport) as client:
        ack = await client.record_many(events[:20])
        assert (ack.accepted, ack.duplicates) == (0, 20)
        for e in events[20:]:
            ack = await client.record(e.experiment, e.task_id, dict(e.metrics), handled_by=e.handled_by)
            assert (ack.accepted, ack.duplicates) == (1, 0)
    assert transport.posts == 2 + len(events) - 20
    assert_results_match(server, experiment, expected(arms, events))


def test_large_batches_go_as_ndjson(server: LiftlabServer, experiment: str) -> None:
    transport = LosingTransport()
    with Client(server.base_url, ndjson_threshold=10, transport=transport) as client:
        arms, events = workload(client, experiment, 25)
        ack = client.record_many(e.to_wire() for e in events)
    assert (ack.accepted, ack.duplicates, ack.rejected) == (50, 0, [])
    content_type, body = transport.posts[0]
    assert content_type == "application/x-ndjson"
    assert body.count(b"\n") == 50
    assert_results_match(server, experiment, expected(arms, events))


def test_a_stable_id_depends_on_the_content_and_an_explicit_one_is_kept() -> None:
    a = OutcomeEvent("exp", "t1", {"cost": 1.5, "resolved": True})
    assert a.event_id == OutcomeEvent("exp", "t1", {"resolved": True, "cost": 1.5}).event_id
    others = [
        OutcomeEvent("exp", "t2", {"cost": 1.5, "resolved": True}),
        OutcomeEvent("exp2", "t1", {"cost": 1.5, "resolved": True}),
        OutcomeEvent("exp", "t1", {"cost": 1.25, "resolved": True}),
        OutcomeEvent("exp", "t1", {"cost": 1.5, "resolved": True}, ts="2026-01-01T00:00:00Z"),
        OutcomeEvent("exp", "t1", {"cost": 1.5, "resolved": True}, handled_by="ai"),
    ]
    assert len({a.event_id} | {o.event_id for o in others}) == 1 + len(others)
    assert OutcomeEvent("exp", "t1", {"cost": 1}, event_id="mine").to_wire()["event_id"] == "mine"
    with pytest.raises(ValueError):
        OutcomeEvent("exp", "t1", {"cost": math.nan})
    with pytest.raises(TypeError):
        OutcomeEvent.from_mapping({"experiment": "exp", "task_id": "t1", "metrics": {"cost": 1}, "arm": "ai"})


def test_an_invalid_event_raises_a_problem_pointing_at_it(server: LiftlabServer, experiment: str) -> None:
    with Client(server.base_url) as client:
        client.assign(experiment, "t1")
        with pytest.raises(ProblemError) as bad:
            client.record(experiment, "t1", {"cost": -2, "nope": 1})
        assert bad.value.status == 422
        assert {e.pointer for e in bad.value.errors} == {"/metrics/cost", "/metrics/nope"}
        with pytest.raises(ProblemError) as unassigned:
            client.record(experiment, "never-assigned", {"cost": 1})
        assert [e.pointer for e in unassigned.value.errors] == ["/task_id"]


@pytest.mark.parametrize("threshold, base", [(500, "/events/"), (1, "/")])
def test_a_batch_judges_each_event_and_all_invalid_is_a_problem(
    server: LiftlabServer, experiment: str, threshold: int, base: str
) -> None:
    with Client(server.base_url, ndjson_threshold=threshold) as client:
        client.assign(experiment, "t1")
        good = {"experiment": experiment, "task_id": "t1", "metrics": {"cost": 1.0}}
        bad_metric = {"experiment": experiment, "task_id": "t1", "metrics": {"nope": 1}}
        unassigned = {"experiment": experiment, "task_id": "t-none", "metrics": {"cost": 1.0}}
        ack = client.record_many([good, bad_metric, {**good, "metrics": {"cost": 2.0}}])
        assert (ack.accepted, ack.duplicates) == (2, 0)
        assert [r.index for r in ack.rejected] == [1]
        assert [e.pointer for e in ack.rejected[0].errors] == ["/metrics/nope"]
        with pytest.raises(ProblemError) as none_valid:
            client.record_many([bad_metric, unassigned])
    assert none_valid.value.status == 422
    assert [e.pointer for e in none_valid.value.errors] == [f"{base}0/metrics/nope", f"{base}1/task_id"]
    assert all(isinstance(e, FieldError) and e.message for e in none_valid.value.errors)
