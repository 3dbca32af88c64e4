"""Errors raised by the liftlab client: a problem the server reported, or a server out of reach."""

from __future__ import annotations

from typing import List, Optional

from .models import FieldError


class LiftlabError(Exception):
    """Base class of every error this client raises."""


class ProblemError(LiftlabError):
    """An RFC 9457 problem answered by liftlab (a 4xx, or a 429 that outlasted its retries).

    ``errors`` lists ``FieldError(pointer, message)`` for validation problems, where
    ``pointer`` is an RFC 6901 JSON pointer into the request. ``request_id`` is the server's
    ``x-request-id`` (the trace id of a ``traceparent`` passed in), for finding its log line.
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        type: str = "about:blank",
        errors: Optional[List[FieldError]] = None,
        request_id: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.errors: List[FieldError] = list(errors or [])
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.status} {self.title}: {self.detail}"
        if self.errors:
            text += "; " + "; ".join(f"{e.pointer or '(document)'}: {e.message}" for e in self.errors)
        return text


class LiftlabUnavailable(LiftlabError):
    """liftlab could not be reached, timed out, answered 5xx, or answered something that is not liftlab's.

    ``status`` is the HTTP status when there was an answer (a 5xx), else ``None``; the
    underlying exception, if any, is the ``__cause__``.
    """

    def __init__(self, message: str, *, status: Optional[int] = None) -> None:
        self.status = status
        super().__init__(message)
