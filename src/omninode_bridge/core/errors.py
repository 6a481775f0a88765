"""RFC 9457 problem details for every error, through Litestar's ProblemDetailsPlugin.

Each problem has a stable ``type`` URI (``https://omninode.dev/problems/<slug>``), a ``title``, the
``status``, a human ``detail`` and the request's ``correlation_id``. Validation problems list the
offending fields under ``errors``. No traceback ever reaches a client: unexpected exceptions are
logged with their traceback and answered with a generic 500.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from omninode_bridge.core.breaker import CircuitOpenError
from omninode_bridge.core.db import is_database_unavailable
from omninode_bridge.core.inputs import InputError, MalformedBodyError
from omninode_bridge.core.safe_errors import loggable_error

if TYPE_CHECKING:
    from litestar.types import ExceptionHandlersMap

__all__ = [
    "PROBLEM_BASE",
    "ProblemError",
    "correlation_id_of",
    "exception_handlers",
    "problem_details_plugin",
    "problem_type",
]

log = structlog.get_logger(__name__)

PROBLEM_BASE = "https://omninode.dev/problems/"
_MISSING_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `([^`]+)`")

_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "rate-limited",
    500: "internal-error",
    503: "service-unavailable",
    504: "gateway-timeout",
}


def problem_type(status: int, slug: str | None = None) -> str:
    """The stable ``type`` URI for a status (or an explicit slug)."""
    return PROBLEM_BASE + (slug or _SLUGS.get(status, f"http-{status}"))


class ProblemError(ProblemDetailsException):
    """Raise this from services for a problem with its own slug.

    Args:
        status: HTTP status.
        detail: What went wrong, for a human.
        slug: Stable identifier appended to :data:`PROBLEM_BASE`; defaults to the status's slug.
        title: Short summary; defaults to the HTTP reason phrase.
        headers: Extra response headers (e.g. ``Retry-After``).
        extra: Extension members added to the problem object.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            detail=detail,
            status_code=status,
            headers=headers,
            extra=extra,
            type_=problem_type(status, slug),
            title=title or HTTPStatus(status).phrase,
        )


def correlation_id_of(request: Request[Any, Any, Any]) -> str | None:
    """The correlation id the observability middleware gave this request."""
    return request.scope.get("state", {}).get("correlation_id")


def _handle_problem(request: Request[Any, Any, Any], exc: ProblemDetailsException) -> Response[Any]:
    if exc.type_ is None:
        exc.type_ = problem_type(exc.status_code)
    if exc.title is None:
        exc.title = HTTPStatus(exc.status_code).phrase
    response = exc.to_response(request)
    correlation_id = correlation_id_of(request)
    response.content["correlation_id"] = correlation_id
    if correlation_id:
        # Errors raised by middleware are answered outside the correlation middleware's send wrapper.
        response.headers["X-Correlation-ID"] = correlation_id
    return response


def _internal_detail(request: Request[Any, Any, Any]) -> str:
    """A 500's detail: never the exception's text (it may carry SQL, values or secrets)."""
    correlation_id = correlation_id_of(request)
    if correlation_id:
        return f"Internal error; quote correlation id {correlation_id} when reporting it."
    return "Internal error."


_E = TypeVar("_E", bound=Exception)


def _converting(
    convert: Callable[[_E], ProblemDetailsException],
) -> Callable[[Request[Any, Any, Any], _E], Response[Any]]:
    def handler(request: Request[Any, Any, Any], exc: _E) -> Response[Any]:
        return _handle_problem(request, convert(exc))

    return handler


def _from_http_exception(exc: HTTPException) -> ProblemDetailsException:
    status = exc.status_code
    detail = exc.detail if exc.detail and exc.detail != HTTPStatus(status).phrase else HTTPStatus(status).phrase
    extra = exc.extra if isinstance(exc.extra, dict) else None
    if status == 500:  # an HTTPException(500) raised by framework code: never leak its text
        detail, extra = "Internal error.", None
    return ProblemDetailsException(
        status_code=status,
        detail=detail,
        headers=exc.headers,
        extra=extra,
        type_=problem_type(status),
        title=HTTPStatus(status).phrase,
    )


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    problem = _from_http_exception(exc)
    if problem.status_code == 500:
        problem.detail = _internal_detail(request)
    return _handle_problem(request, problem)


def _from_validation(exc: ValidationException) -> ProblemDetailsException:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            field, message = item.get("key"), item.get("message")
            # msgspec reports a missing or unknown field at its parent ("data" for the body itself): name it.
            missing = _MISSING_FIELD.match(str(message or ""))
            if missing:
                field = missing.group(1) if field in (None, "data") else f"{field}.{missing.group(1)}"
            errors.append({"field": field, "source": item.get("source"), "message": message})
    fields = ", ".join(str(e["field"]) for e in errors if e["field"])
    detail = f"Invalid request: {fields}." if fields else (exc.detail or "The request is not valid.")
    if len(errors) == 1 and errors[0]["message"]:
        detail = f"Invalid {errors[0]['field'] or 'request body'}: {errors[0]['message']}"
    return ProblemDetailsException(
        status_code=422,
        detail=detail,
        extra={"errors": errors},
        type_=problem_type(422),
        title="Unprocessable Content",
    )


def _from_circuit_open(exc: CircuitOpenError) -> ProblemDetailsException:
    retry = max(1, math.ceil(exc.retry_after))
    return ProblemDetailsException(
        status_code=503,
        detail=f"The {exc.name} is unavailable; retry in {retry} s.",
        headers={"Retry-After": str(retry)},
        type_=problem_type(503, f"{exc.name}-unavailable"),
        title="Service Unavailable",
    )


def _from_input_error(exc: InputError) -> ProblemDetailsException:
    status = 400 if isinstance(exc, MalformedBodyError) else 422
    where = f"{exc.field}: " if exc.field else ""
    return ProblemDetailsException(
        status_code=status,
        detail=f"Invalid {exc.source if status == 400 else 'request'}: {where}{exc.message}",
        extra={"errors": [{"field": exc.field, "source": exc.source, "message": exc.message}]},
        type_=problem_type(status),
        title=HTTPStatus(status).phrase,
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, HTTPException):
        return _http_exception(request, exc)
    if is_database_unavailable(exc):
        log.warning("database unavailable", error=loggable_error(exc)[:200])
        problem = ProblemDetailsException(
            status_code=503,
            detail="The database is unavailable; retry shortly.",
            headers={"Retry-After": "5"},
            type_=problem_type(503, "database-unavailable"),
            title="Service Unavailable",
        )
        return _handle_problem(request, problem)
    # The traceback is rendered by core/observability.py: no locals, database errors classified.
    log.exception("unhandled error", path=request.url.path, method=request.method)
    problem = ProblemDetailsException(
        status_code=500,
        detail=_internal_detail(request),
        type_=problem_type(500),
        title="Internal Server Error",
    )
    return _handle_problem(request, problem)


def problem_details_plugin() -> ProblemDetailsPlugin:
    """Litestar's problem-details plugin, answering ``ProblemDetailsException`` with our envelope."""
    return ProblemDetailsPlugin(ProblemDetailsConfig(exception_handler=_handle_problem))


#: Exception handlers for everything else; each converts to a problem and answers like the plugin.
#: (The plugin's own ``exception_to_problem_detail_map`` would skip the correlation id.)
exception_handlers: ExceptionHandlersMap = {
    HTTPException: _http_exception,
    ValidationException: _converting(_from_validation),
    CircuitOpenError: _converting(_from_circuit_open),
    InputError: _converting(_from_input_error),
    Exception: _unexpected,
}
