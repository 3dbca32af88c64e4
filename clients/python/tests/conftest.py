"""Fixtures: a real `liftlab serve` on a free loopback port over a temporary data directory.

The binary is ``$LIFTLAB_BIN`` (``scripts/test`` sets it), else the repository's debug build.
Every server binds 127.0.0.1 port 0 (the kernel picks a free port; the server prints it)
and is killed at teardown, whatever the test did.
"""

from __future__ import annotations

import itertools
import os
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT = 30.0


def binary() -> Path:
    given = os.environ.get("LIFTLAB_BIN")
    path = Path(given) if given else REPO / "target" / "debug" / "liftlab"
    if not path.is_file():
        pytest.fail(f"no liftlab binary at {path}: build it (cargo build --bin liftlab) or set LIFTLAB_BIN")
    return path


class LiftlabServer:
    """One `liftlab serve` process, with a small admin client that waits out 429s."""

    def __init__(self, data: Path, extra: List[str]) -> None:
        self.data = data
        self.log = data.with_suffix(".log")
        self._stderr = self.log.open("wb")
        self.process = subprocess.Popen(
            [str(binary()), "serve", "--addr", "127.0.0.1:0", "--data", str(data), *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        self.base_url = ""
        while not self.base_url:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                raise RuntimeError(f"liftlab serve did not start: {self.log.read_text(errors='replace')}")
            if line.startswith("listening on "):
                self.base_url = line.split("listening on ", 1)[1].strip()
        assert self.base_url.startswith("http://127.0.0.1:"), self.base_url
        self.admin = httpx.Client(base_url=self.base_url, timeout=10.0)

    def stop(self) -> None:
        """Kills the server (SIGKILL) and waits for it; safe to call twice."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self._stderr.close()
        if hasattr(self, "admin"):
            self.admin.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """An admin request that waits out rate limits and must succeed."""
        for _ in range(50):
            r = self.admin.request(method, path, json=body)
            if r.status_code != 429:
                break
            time.sleep(float(r.headers.get("retry-after", "1")))
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def create(self, spec: Dict[str, Any], *, start: bool = True) -> str:
        self.call("POST", "/v1/experiments", spec)
        if start:
            self.call("POST", f"/v1/experiments/{spec['key']}/start", {})
        return str(spec["key"])


_keys = itertools.count()


def spec(key: Optional[str] = None) -> Dict[str, Any]:
    """A small experiment: human (baseline) vs ai, 50/50; `resolved` yes/no and a summed `cost`."""
    return {
        "key": key or f"py-client-{next(_keys)}",
        "arms": [{"key": "human", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai": 0.5}},
        "metrics": [
            {"key": "resolved", "kind": "binary", "direction": "increase", "role": "primary"},
            {"key": "cost", "kind": "cost", "direction": "decrease", "role": "secondary", "aggregate": "sum"},
        ],
    }


def metric_arms(results: Dict[str, Any], metric: str) -> Dict[str, Dict[str, Any]]:
    """The per-arm figures (n, mean, sd) of one metric in a results document, by arm."""
    for m in results["metrics"]:
        if m["key"] == metric:
            return {a["arm"]: a for a in m["arms"]}
    raise KeyError(metric)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiftlabServer]:
    """A server shared by the tests that need nothing special of it (each uses its own experiment)."""
    s = LiftlabServer(tmp_path_factory.mktemp("shared") / "data", [])
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    """Starts servers of this test's own (with extra `serve` flags); all are killed at teardown."""
    started: List[LiftlabServer] = []

    def make(*extra: str) -> LiftlabServer:
        s = LiftlabServer(tmp_path / f"data{len(started)}", list(extra))
        started.append(s)
        return s

    try:
        yield make
    finally:
        for s in started:
            s.stop()


@pytest.fixture
def experiment(server: LiftlabServer) -> str:
    """A fresh running experiment on the shared server."""
    return server.create(spec())


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
