"""What the OpenAPI document says about errors: one problem-details schema, and the error responses of an
operation built in one place.

Every error this service sends is an RFC 9457 problem (``application/problem+json``, see
:mod:`omninode_bridge.core.errors`). Controllers declare their responses with :func:`error_responses`,
which documents the answers any operation can give (400, 422, 429, 500, 503; 401 and 403 when a key is
checked) with the shared :class:`Problem` schema, plus the statuses only that operation gives (404, 409,
413, 504...). Declaring 400 here also replaces the schema Litestar would otherwise document for it (its own
``{status_code, detail, extra}`` JSON, which this service never sends).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from litestar.openapi import ResponseSpec

__all__ = [
    "BODY_ERRORS",
    "COMMON_ERRORS",
    "KEY_ERRORS",
    "PROBLEM_MEDIA_TYPE",
    "Problem",
    "ProblemFieldError",
    "documented",
    "error_responses",
    "problem",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemFieldError(msgspec.Struct, kw_only=True):
    """One offending input of a 400 or 422."""

    field: str | None = None
    source: str | None = None
    message: str | None = None


class Problem(msgspec.Struct, kw_only=True):
    """RFC 9457 problem details, as every error of this service is answered.

    Operations may add extension members (``workflow_id``, ``failed_step``...); ``errors`` lists the
    offending fields of a 400 or 422.
    """

    type: str
    title: str
    status: int
    detail: str
    correlation_id: str
    errors: list[ProblemFieldError] | None = None


#: Statuses any operation can answer, with what they mean.
COMMON_ERRORS: Mapping[int, str] = {
    400: "Malformed request: the body is not JSON or not UTF-8",
    422: "Invalid input; `errors` names each offending field",
    429: "Rate limit exceeded; see Retry-After",
    500: "Internal error; quote the correlation id when reporting it",
    503: "A dependency is unavailable; see Retry-After",
}
#: Statuses of operations that read a request body.
BODY_ERRORS: Mapping[int, str] = {413: "The body is over the size limit"}
#: Statuses of operations that check an API key.
KEY_ERRORS: Mapping[int, str] = {
    401: "Missing or invalid API key",
    403: "The key lacks the required scope or namespace",
}


def documented(data_container: Any, description: str) -> ResponseSpec:
    """A further (non-problem) response of an operation, such as a second success status.

    Args:
        data_container: The body's type.
        description: When the operation answers with it.
    """
    return ResponseSpec(data_container=data_container, description=description, generate_examples=False)


def problem(description: str) -> ResponseSpec:
    """A response documented as a :class:`Problem`.

    Args:
        description: What the status means for this operation.
    """
    # No generated examples: Litestar would invent random ones (a status of 2562...).
    return ResponseSpec(
        data_container=Problem, description=description, media_type=PROBLEM_MEDIA_TYPE, generate_examples=False
    )


def error_responses(
    extra: Mapping[int, str | ResponseSpec] | None = None, *, key: bool = True, body: bool = False
) -> dict[int, ResponseSpec]:
    """The ``responses=`` of an operation: the common problems, plus its own.

    Args:
        extra: Further statuses of this operation: a description (documented as a :class:`Problem`) or a
            full :class:`ResponseSpec` (for non-problem bodies, such as a second success status).
        key: Whether the operation checks an API key (documents 401 and 403).
        body: Whether the operation reads a request body (documents 413).

    Returns:
        Status code to response, for a route handler's ``responses``.
    """
    described: dict[int, Any] = {
        **COMMON_ERRORS,
        **(KEY_ERRORS if key else {}),
        **(BODY_ERRORS if body else {}),
        **(extra or {}),
    }
    return {
        status: value if isinstance(value, ResponseSpec) else problem(value)
        for status, value in sorted(described.items())
    }
