"""JSON request bodies: one check (UTF-8, NUL, depth) and one strict conversion for every endpoint."""

from __future__ import annotations

import re
import weakref
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.types import Empty

from omninode_bridge.core.inputs._types import (
    MAX_JSON_DEPTH,
    InputError,
    InvalidEncodingError,
    MalformedBodyError,
    cached_per_handler,
)

_T = TypeVar("_T")
_body_types: weakref.WeakKeyDictionary[BaseRouteHandler, Any] = weakref.WeakKeyDictionary()
_MSGSPEC_PATH = re.compile(r" - at `\$\.?([^`]*)`")


def check_json_value(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Walk decoded JSON once, iteratively: no NUL in any string or key, nesting at most ``max_depth``.

    Args:
        value: The decoded JSON document.
        max_depth: Deepest accepted nesting of objects and arrays.

    Raises:
        InputError: With the dotted path of the first offending value.
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            if depth > max_depth:
                raise InputError(f"JSON is nested deeper than {max_depth} levels", field=path or None)
            for key, item in node.items():
                child = f"{path}.{key}" if path else str(key)
                if "\x00" in key:
                    raise InputError("a key holds a NUL character", field=child.replace("\x00", "\\u0000"))
                stack.append((item, depth + 1, child))
        elif isinstance(node, list):
            if depth > max_depth:
                raise InputError(f"JSON is nested deeper than {max_depth} levels", field=path or None)
            stack.extend((item, depth + 1, f"{path}[{index}]") for index, item in enumerate(node))
        elif isinstance(node, str) and "\x00" in node:
            raise InputError("a string holds a NUL character", field=path or None)


def nests_deeper_than(containers: list[tuple[Any, int]], max_depth: int) -> bool:
    """Whether any of the ``(container, depth)`` pairs nests deeper than ``max_depth``.

    The depth rule of :func:`check_json_value` (a document's root is at depth 1), visiting only the containers and
    building no paths: a batch of 1,000 hooks has ~2,000 of them and ~10,000 values. The list is consumed.
    """
    stack = containers
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def check_json_body(body: bytes) -> Any:
    """Decode a JSON request body and apply :func:`check_json_value`, walking it only when it could fail.

    Args:
        body: The raw body (empty means JSON ``null``).

    Returns:
        The decoded document.

    Raises:
        MalformedBodyError: Not JSON, or not UTF-8 (a 400).
        InputError: NUL in a string or key, or nested too deep (a 422).
    """
    try:
        value = msgspec.json.decode(body or b"null")
    except UnicodeDecodeError as exc:
        raise InvalidEncodingError("the body is not valid UTF-8") from exc
    except RecursionError as exc:
        raise InputError(f"JSON is nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except msgspec.DecodeError as exc:
        # msgspec's message names the byte offset, nothing of the body; keep only that position.
        position = re.search(r"\(byte \d+\)", str(exc))
        raise MalformedBodyError("the body is not valid JSON" + (f" {position.group(0)}" if position else "")) from exc
    # Both checks scan bytes in C first; the Python walk runs only for bodies that might fail it. A NUL can
    # only arrive escaped; without one, only the depth can fail, and the walk that names the offending path
    # runs only when a cheaper walk of the containers alone finds it too deep.
    may_be_deep = body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH
    if b"\\u0000" in body or (
        may_be_deep and isinstance(value, dict | list) and nests_deeper_than([(value, 1)], MAX_JSON_DEPTH)
    ):
        check_json_value(value)
    return value


class SafeRequest(Request[Any, Any, Any]):
    """The app's request class: every JSON body goes through :func:`check_json_body`."""

    async def json(self) -> Any:
        """The decoded JSON body, checked once and cached like Litestar's own."""
        if self._json is Empty:
            if (cached := self._connection_state.json) is not Empty:
                self._json = cached
            else:
                body = await self.body()
                value = check_json_body(body)
                body_type = _body_type(self.route_handler) if "route_handler" in self.scope else None
                if body_type is not None:
                    if not body and not _accepts_null(body_type):
                        raise MalformedBodyError(
                            "the body is empty: send a JSON document (Content-Type: application/json)"
                        )
                    convert_strict(value, body_type)  # refuse what Litestar's lax conversion would coerce
                self._json = self._connection_state.json = value
        return self._json


def _body_type(handler: BaseRouteHandler) -> Any:
    """The type a handler's ``data`` parameter is converted to (None when it takes no typed JSON body)."""

    def compute(handler: BaseRouteHandler) -> Any:
        field = handler.parsed_fn_signature.parameters.get("data")
        return None if field is None or field.annotation is Any else field.annotation

    return cached_per_handler(_body_types, handler, compute)


def _accepts_null(body_type: Any) -> bool:
    try:
        msgspec.convert(None, body_type)
    except msgspec.ValidationError:
        return False
    return True


def convert_strict(value: Any, target: type[_T]) -> _T:
    """Convert decoded JSON to ``target`` with msgspec's strict rules (no numbers as strings or times).

    Args:
        value: The decoded JSON document.
        target: A msgspec-compatible type (usually a Struct).

    Returns:
        The converted value.

    Raises:
        ValidationException: Naming the field, as Litestar reports its own validation errors (a 422).
    """
    try:
        return msgspec.convert(value, target, strict=True)
    except msgspec.ValidationError as exc:
        text_ = str(exc)
        match = _MSGSPEC_PATH.search(text_)
        message = _MSGSPEC_PATH.sub("", text_)
        field = match.group(1) if match and match.group(1) else None
        raise ValidationException(
            detail=f"Invalid request body: {message}", extra=[{"key": field, "source": "body", "message": message}]
        ) from exc
