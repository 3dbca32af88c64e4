"""Assignments against the real server: sticky for sync and async clients, problems with pointers."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Callable

import pytest

from conftest import LiftlabServer, spec
from liftlab_client import AsyncClient, Client, ProblemError

UNITS = [f"ticket-{i}" for i in range(40)]


def test_sync_assignments_are_sticky_and_stored_once(server: LiftlabServer, experiment: str) -> None:
    with Client(server.base_url) as client:
        first = {u: client.assign(experiment, u) for u in UNITS}
        again = {u: client.assign(experiment, u) for u in UNITS}
    for u in UNITS:
        a, b = first[u], again[u]
        assert (a.arm, a.assignment_id, a.version) == (b.arm, b.assignment_id, b.version), u
        assert a.in_experiment and not a.fallback and a.reason is None
        assert a.propensity == pytest.approx(0.5)
        assert a.experiment == experiment
    arms = [a.arm for a in first.values()]
    # 40 units split 50/50 leave both arms with some (the chance of all in one is 2 in 10^12).
    assert set(arms) == {"human", "ai"}
    # The server counts each unit once, in the arm it answered.
    assigned = {a["key"]: a["assigned"] for a in server.call("GET", f"/v1/experiments/{experiment}/results")["arms"]}
    assert assigned == {"human": arms.count("human"), "ai": arms.count("ai")}


@pytest.mark.anyio
async def test_async_assignments_are_sticky_and_agree_with_sync(server: LiftlabServer, experiment: str) -> None:
    async with AsyncClient(server.base_url) as client:
        first = await asyncio.gather(*(client.assign(experiment, u) for u in UNITS))
        again = await asyncio.gather(*(client.assign(experiment, u) for u in UNITS))
    with Client(server.base_url) as sync:
        third = [sync.assign(experiment, u) for u in UNITS]
    for a, b, c in zip(first, again, third):
        assert a.assignment_id == b.assignment_id == c.assignment_id
        assert a.arm == b.arm == c.arm
        assert a.in_experiment and not a.fallback
    assert {a.arm for a in first} == {"human", "ai"}


def test_a_unit_outside_a_draft_experiment_gets_the_baseline_and_its_reason(server: LiftlabServer) -> None:
    key = server.create(spec(), start=False)
    with Client(server.base_url) as client:
        a = client.assign(key, "ticket-1")
        assert (a.arm, a.in_experiment, a.reason, a.fallback) == ("human", False, "not_running", False)
        assert a.propensity == 1.0
        assert client.baseline(key) == "human"


def test_task_id_and_attributes_reach_the_server(server: LiftlabServer, experiment: str) -> None:
    with Client(server.base_url) as client:
        a = client.assign(experiment, "customer-7", task_id="case-99", attributes={"region": "emea", "size": 3})
        # The outcome refers to the task id, which only works if the server stored it.
        ack = client.record(experiment, "case-99", {"resolved": True})
        assert (ack.accepted, ack.duplicates, ack.rejected) == (1, 0, [])
        # Another unit may not take the same task id: a 409 problem.
        with pytest.raises(ProblemError) as taken:
            client.assign(experiment, "customer-8", task_id="case-99")
        assert taken.value.status == 409
        assert client.assign(experiment, "customer-7", task_id="case-99").assignment_id == a.assignment_id


def test_bad_input_raises_a_problem_with_pointers(server: LiftlabServer, experiment: str) -> None:
    with Client(server.base_url) as client:
        with pytest.raises(ProblemError) as bad:
            client.assign(experiment, "", attributes={"nested": ["no"]})  # type: ignore[dict-item]
    problem = bad.value
    assert problem.status == 422
    assert problem.type == "https://liftlab.dev/problems/validation"
    assert problem.title and problem.detail
    pointers = {e.pointer for e in problem.errors}
    assert {"/unit_id", "/attributes/nested"} <= pointers, problem.errors


def test_an_unknown_experiment_is_a_404_carrying_the_trace_id(server: LiftlabServer) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with Client(server.base_url) as client:
        with pytest.raises(ProblemError) as missing:
            client.assign(
                "no-such-experiment",
                "ticket-1",
                default_arm="human",
                traceparent=f"00-{trace_id}-00f067aa0ba902b7-01",
            )
    # A 4xx is a mistake to fix, not an outage: no fallback even with a default arm.
    assert missing.value.status == 404
    assert "no-such-experiment" in missing.value.detail
    # The server took the caller's trace id as its request id.
    assert missing.value.request_id == trace_id


def test_a_key_is_sent_as_bearer(make_server: Callable[..., LiftlabServer], tmp_path: Path) -> None:
    key = "ll_test_router_key_0123456789"
    keys = tmp_path / "keys"
    digest = hashlib.sha256(key.encode()).hexdigest()
    admin_key = "ll_test_admin_key_0123456789"
    keys.write_text(
        f"router {digest} router-1\nadmin {hashlib.sha256(admin_key.encode()).hexdigest()} admin-1\n"
    )
    s = make_server("--keys", str(keys))
    s.admin.headers["authorization"] = f"Bearer {admin_key}"
    exp = s.create(spec())
    with Client(s.base_url, api_key=key) as client:
        assert client.assign(exp, "u1").in_experiment
    with Client(s.base_url) as anonymous:
        with pytest.raises(ProblemError) as denied:
            anonymous.assign(exp, "u1", default_arm="human")
    assert denied.value.status == 401
