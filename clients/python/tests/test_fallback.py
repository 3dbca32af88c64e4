"""Graceful fallback: a stopped, silent or failing server never stops the workflow's assignments."""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Callable, Iterator, List

import httpx
import pytest

from conftest import LiftlabServer, spec
from liftlab_client import AsyncClient, Client, LiftlabUnavailable, ProblemError


def fallback_warnings(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "liftlab_client" and r.levelno == logging.WARNING and "outside the experiment" in r.getMessage()
    ]


@pytest.mark.anyio
async def test_a_stopped_server_gives_the_baseline_it_taught_or_the_default(
    make_server: Callable[..., LiftlabServer], caplog: pytest.LogCaptureFixture
) -> None:
    s = make_server()
    running = s.create(spec())
    draft = s.create(spec(), start=False)
    unknown = s.create(spec())
    client = Client(s.base_url, timeout=1.0)
    aclient = AsyncClient(s.base_url, timeout=1.0)
    try:
        # An answer inside the experiment: the client reads the spec once to learn the baseline.
        assert client.assign(running, "u1").in_experiment
        assert (await aclient.assign(running, "u1")).in_experiment
        # An answer outside the experiment is the baseline itself.
        assert client.assign(draft, "u1").reason == "not_running"
        s.stop()

        caplog.set_level(logging.WARNING, logger="liftlab_client")
        for key in (running, draft):
            a = client.assign(key, "u2")
            assert (a.arm, a.in_experiment, a.fallback) == ("human", False, True)
            assert (a.version, a.assignment_id, a.propensity, a.experiment) == (None, None, 1.0, key)
        b = await aclient.assign(running, "u3")
        assert (b.arm, b.in_experiment, b.fallback) == ("human", False, True)
        assert len(fallback_warnings(caplog)) == 3
        assert all("human" in w for w in fallback_warnings(caplog))

        # A default arm wins over the baseline; the caller decides what "safe" is.
        assert client.assign(running, "u4", default_arm="ai").arm == "ai"
        # Nothing known about this experiment and no default: the caller has to decide.
        with pytest.raises(LiftlabUnavailable) as nothing:
            client.assign(unknown, "u5")
        assert "no fallback arm" in str(nothing.value)
        with pytest.raises(LiftlabUnavailable):
            await aclient.assign(unknown, "u5")
        assert (await aclient.assign(unknown, "u5", default_arm="human")).fallback
        # Outcomes are retried, then given up on: the caller may keep them and send them later.
        started = time.monotonic()
        quick = Client(s.base_url, timeout=1.0, retries=2, backoff=0.01, max_backoff=0.02)
        with pytest.raises(LiftlabUnavailable):
            quick.record(running, "u1", {"cost": 1.0})
        quick.close()
        assert time.monotonic() - started < 5
        retries = [r for r in caplog.records if "retry" in r.getMessage() and "/v1/outcomes" in r.getMessage()]
        assert len(retries) == 2
    finally:
        client.close()
        await aclient.aclose()


def test_baselines_may_be_configured(make_server: Callable[..., LiftlabServer]) -> None:
    s = make_server()
    s.stop()
    with Client(s.base_url, baselines={"claims": "adjuster"}) as client:
        a = client.assign("claims", "claim-1")
        assert (a.arm, a.fallback) == ("adjuster", True)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback socket that accepts connections and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_a_server_that_times_out_gives_the_fallback_in_time(silent_server: str) -> None:
    with Client(silent_server, timeout=0.3) as client:
        started = time.monotonic()
        a = client.assign("exp", "u1", default_arm="human")
        assert (a.arm, a.fallback) == ("human", True)
        assert time.monotonic() - started < 2


def problem(status: int, title: str) -> httpx.Response:
    body = {"type": "https://liftlab.dev/problems/x", "title": title, "status": status, "detail": "the store is closed"}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def test_a_5xx_gives_the_fallback_and_outcomes_are_retried_with_the_same_id() -> None:
    bodies: List[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/assign"):
            return problem(503, "Storage unavailable")
        bodies.append(request.content)
        if len(bodies) < 3:
            return problem(503 if len(bodies) == 1 else 500, "Storage unavailable")
        return httpx.Response(200, json={"accepted": 1, "duplicates": 0, "rejected": []})

    with Client("http://liftlab.invalid", backoff=0.01, transport=httpx.MockTransport(handler)) as client:
        a = client.assign("exp", "u1", default_arm="human")
        assert (a.arm, a.in_experiment, a.fallback) == ("human", False, True)
        ack = client.record("exp", "u1", {"cost": 2.5})
    assert (ack.accepted, ack.duplicates, ack.rejected) == (1, 0, [])
    assert len(bodies) == 3
    ids = {json.loads(b)["event_id"] for b in bodies}
    assert len(ids) == 1


def test_a_4xx_is_never_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return problem(409, "Conflict with current state")

    with Client("http://liftlab.invalid", backoff=0.01, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ProblemError) as conflict:
            client.record("exp", "u1", {"cost": 2.5})
    assert conflict.value.status == 409
    assert len(calls) == 1


def test_an_answer_that_is_not_liftlabs_is_an_outage_for_assign() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>captive portal</html>"))
    with Client("http://liftlab.invalid", transport=transport) as client:
        assert client.assign("exp", "u1", default_arm="human").fallback
