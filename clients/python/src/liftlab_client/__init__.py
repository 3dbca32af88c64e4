"""liftlab-client: assign tasks to experiment arms, record their outcomes and read results from liftlab.

    from liftlab_client import Client

    with Client("http://127.0.0.1:8080", api_key=KEY) as liftlab:
        a = liftlab.assign("support-triage-ai-assist", "ticket-1042", default_arm="human")
        ...  # route the task to a.arm
        if a.in_experiment:
            liftlab.record("support-triage-ai-assist", "ticket-1042", {"cycle_time_minutes": 31.5})

``AsyncClient`` has the same methods for asyncio. See the package README for a full router.
"""

from ._async import AsyncClient
from ._core import __version__
from ._sync import Client
from .errors import LiftlabError, LiftlabUnavailable, ProblemError
from .models import (
    Assignment,
    FieldError,
    HandledBy,
    OutcomeAck,
    OutcomeEvent,
    Rejected,
    stable_event_id,
)

__all__ = [
    "AsyncClient",
    "Assignment",
    "Client",
    "FieldError",
    "HandledBy",
    "LiftlabError",
    "LiftlabUnavailable",
    "OutcomeAck",
    "OutcomeEvent",
    "ProblemError",
    "Rejected",
    "__version__",
    "stable_event_id",
]
