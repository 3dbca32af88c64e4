"""A real 429 from `liftlab serve --rate-limit`: outcomes wait for Retry-After, assignments fall back."""

from __future__ import annotations

import logging
import time
from typing import Callable

import pytest

from conftest import LiftlabServer, metric_arms, spec
from liftlab_client import Client


def drain(s: LiftlabServer) -> None:
    """Spends this client address's tokens until the server refuses a request with 429."""
    for _ in range(50):
        r = s.admin.get("/v1/experiments")
        if r.status_code == 429:
            assert r.headers["retry-after"] == "1", r.headers
            return
    pytest.fail("the server never answered 429")


def test_a_429_is_retried_after_retry_after(
    make_server: Callable[..., LiftlabServer], caplog: pytest.LogCaptureFixture
) -> None:
    # One request a second: Retry-After is then 1 s, far longer than the client's backoff.
    s = make_server("--rate-limit", "1/s", "--burst", "3")
    key = s.create(spec())
    arm = s.call("POST", f"/v1/experiments/{key}/assign", {"unit_id": "t1"})["arm"]
    caplog.set_level(logging.WARNING, logger="liftlab_client")
    with Client(s.base_url, backoff=0.01, max_backoff=0.05) as client:
        drain(s)
        started = time.monotonic()
        ack = client.record(key, "t1", {"cost": 4.0})
        waited = time.monotonic() - started
        assert (ack.accepted, ack.duplicates, ack.rejected) == (1, 0, [])
        retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
        # Backoff alone would have come back after 0.01 s, been refused again and retried more.
        assert len(retries) == 1, retries
        assert "HTTP 429" in retries[0]
        assert waited >= 0.95

        # An assignment does not wait: over the limit, the router serves the fallback at once.
        drain(s)
        started = time.monotonic()
        a = client.assign(key, "t2", default_arm="human")
        assert (a.arm, a.fallback) == ("human", True)
        assert time.monotonic() - started < 0.5

        # Results are retried like outcomes; the event was counted once.
        drain(s)
        cost = metric_arms(client.results(key), "cost")
    assert cost[arm]["n"] == 1
    assert cost[arm]["mean"] == 4.0
