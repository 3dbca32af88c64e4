"""The client's models stay in step with api-spec/openapi.yaml: field names and required fields."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Dict, get_args

import pytest
import yaml

from conftest import REPO
from liftlab_client import AsyncClient, Assignment, Client, FieldError, OutcomeAck, OutcomeEvent, ProblemError, Rejected
from liftlab_client import _core
from liftlab_client.models import ASSIGNMENT_REQUIRED, OUTCOME_ACK_REQUIRED, HandledBy, WireError

OPENAPI = REPO / "api-spec" / "openapi.yaml"


@pytest.fixture(scope="module")
def api() -> Dict[str, Any]:
    return yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))


def schema(api: Dict[str, Any], name: str) -> Dict[str, Any]:
    return api["components"]["schemas"][name]


def fields(cls: Any) -> set:
    return {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}


def test_assignment_fields_and_required_fields(api: Dict[str, Any]) -> None:
    s = schema(api, "Assignment")
    # Every field of the answer, plus `fallback`, which only the client can know.
    assert fields(Assignment) == set(s["properties"]) | {"fallback"}
    assert set(ASSIGNMENT_REQUIRED) == set(s["required"])
    examples = api["paths"]["/v1/experiments/{key}/assign"]["post"]["responses"]["200"]["content"][
        "application/json"
    ]["examples"]
    assert examples
    for example in examples.values():
        answer = example["value"]
        a = Assignment.from_wire(answer)
        assert {k: getattr(a, k) for k in answer} == answer
        assert a.fallback is False
        for name in s["required"]:
            with pytest.raises(WireError):
                Assignment.from_wire({k: v for k, v in answer.items() if k != name})


def test_assign_request_fields(api: Dict[str, Any]) -> None:
    s = schema(api, "AssignRequest")
    full = _core.assign_body("u1", "t1", {"region": "emea"})
    assert set(full) == set(s["properties"])
    assert set(_core.assign_body("u1", None, None)) == set(s["required"])
    # The assign method's keyword arguments name the request's optional fields.
    params = inspect.signature(Client.assign).parameters
    assert set(s["properties"]) - {"unit_id"} <= set(params)


def test_outcome_event_fields_and_required_fields(api: Dict[str, Any]) -> None:
    s = schema(api, "OutcomeEvent")
    full = OutcomeEvent(
        "exp",
        "t1",
        {"cost": 1.0},
        event_id="e1",
        ts="2026-03-02T14:05:00Z",
        handled_by="ai",
        model_version="m1",
        attributes={"queue": "billing"},
    )
    assert set(full.to_wire()) == set(s["properties"])
    assert fields(OutcomeEvent) == set(s["properties"])
    assert set(OutcomeEvent("exp", "t1", {"cost": 1.0}).to_wire()) == set(s["required"])
    assert set(get_args(HandledBy)) == set(s["properties"]["handled_by"]["enum"])
    # `record` takes every field of an event.
    params = inspect.signature(Client.record).parameters
    assert set(s["properties"]) <= set(params)
    # The spec's own examples read as events with the same wire form.
    examples = api["paths"]["/v1/outcomes"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    single = examples["single"]["value"]
    assert OutcomeEvent.from_mapping(single).to_wire() == single
    for event in examples["batch"]["value"]["events"]:
        assert OutcomeEvent.from_mapping(event).to_wire() == event


def test_outcome_ack_fields_and_required_fields(api: Dict[str, Any]) -> None:
    s = schema(api, "OutcomeSummary")
    assert fields(OutcomeAck) == set(s["properties"]) == set(OUTCOME_ACK_REQUIRED) == set(s["required"])
    rejected = s["properties"]["rejected"]["items"]
    assert fields(Rejected) == set(rejected["properties"]) == set(rejected["required"])
    field_error = schema(api, "FieldError")
    assert fields(FieldError) == set(field_error["properties"]) == set(field_error["required"])
    example = api["paths"]["/v1/outcomes"]["post"]["responses"]["200"]["content"]["application/json"]["example"]
    ack = OutcomeAck.from_wire(example)
    assert (ack.accepted, ack.duplicates) == (example["accepted"], example["duplicates"])
    assert [r.index for r in ack.rejected] == [r["index"] for r in example["rejected"]]
    assert [[dataclasses.asdict(e) for e in r.errors] for r in ack.rejected] == [
        r["errors"] for r in example["rejected"]
    ]
    for name in s["required"]:
        with pytest.raises(WireError):
            OutcomeAck.from_wire({k: v for k, v in example.items() if k != name})


def test_problem_error_carries_every_problem_field(api: Dict[str, Any]) -> None:
    s = schema(api, "Problem")
    e = ProblemError(422, "Invalid request content", "bad", errors=[FieldError("/x", "wrong")])
    assert set(s["properties"]) <= set(vars(e))


def test_the_async_client_has_the_sync_clients_methods() -> None:
    public = {n for n in dir(Client) if not n.startswith("_")} - {"close"}
    assert public == {n for n in dir(AsyncClient) if not n.startswith("_")} - {"aclose"}
    for name in public:
        sync, async_ = getattr(Client, name), getattr(AsyncClient, name)
        assert inspect.signature(sync) == inspect.signature(async_), name
        if name != "baseline":
            assert inspect.iscoroutinefunction(async_), name
