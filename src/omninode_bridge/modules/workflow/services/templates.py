"""The one template syntax of workflow parameters: ``{{ inputs.<path> }}`` and ``{{ tasks.<id>.output.<path> }}``.

A path is dot-separated keys and list indexes (``{{ tasks.fetch.output.body.items.0.id }}``). A string that is
exactly one template takes the referenced value as it is (a number stays a number); a template inside longer
text is replaced by the value's text (JSON for objects and lists). Nothing is evaluated: a reference is a
lookup, so a definition can never run code. A missing key or index is an error of the task.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

__all__ = ["TemplateError", "is_truthy", "references", "render"]

_TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_PATH = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


class TemplateError(ValueError):
    """A template that does not parse, or names a value that does not exist."""


def _parse(expression: str) -> list[str]:
    if not _PATH.fullmatch(expression):
        raise TemplateError(f"bad template {{{{ {expression} }}}}: expected inputs.<path> or tasks.<id>.output.<path>")
    parts = expression.split(".")
    if parts[0] == "inputs":
        return parts
    if parts[0] == "tasks" and len(parts) >= 3 and parts[2] == "output":
        return parts
    raise TemplateError(f"bad template {{{{ {expression} }}}}: expected inputs.<path> or tasks.<id>.output.<path>")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def references(value: Any) -> set[str]:
    """The task ids the templates in ``value`` (any JSON value) reference.

    Raises:
        TemplateError: A template that does not parse.
    """
    found: set[str] = set()
    for string in _strings(value):
        for match in _TEMPLATE.finditer(string):
            parts = _parse(match.group(1))
            if parts[0] == "tasks":
                found.add(parts[1])
    return found


def _lookup(parts: list[str], context: Mapping[str, Any]) -> Any:
    if parts[0] == "inputs":
        current: Any = context.get("inputs", {})
        path = parts[1:]
    else:
        tasks = context.get("tasks", {})
        if parts[1] not in tasks:
            raise TemplateError(f"tasks.{parts[1]} has no output (not upstream, or not run)")
        current = tasks[parts[1]]
        path = parts[3:]
    for i, key in enumerate(path):
        if isinstance(current, Mapping) and key in current:
            current = current[key]
        elif isinstance(current, list) and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
        else:
            where = ".".join(parts[: len(parts) - len(path) + i + 1])
            raise TemplateError(f"{where} does not exist")
    return current


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def _render_string(string: str, context: Mapping[str, Any]) -> Any:
    whole = _TEMPLATE.fullmatch(string.strip()) if "{{" in string else None
    if whole is not None and string.strip() == whole.group(0):
        return _lookup(_parse(whole.group(1)), context)
    if "{{" not in string:
        return string
    return _TEMPLATE.sub(lambda m: _text(_lookup(_parse(m.group(1)), context)), string)


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """``value`` with every template replaced from ``context`` (``{"inputs": ..., "tasks": {id: output}}``).

    Raises:
        TemplateError: A template that does not parse or names a missing value.
    """
    if isinstance(value, str):
        return _render_string(value, context)
    if isinstance(value, Mapping):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value


def is_truthy(value: Any) -> bool:
    """A ``when`` condition's verdict: false for null, false, 0, "", "false", "0", empty lists and objects."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "null")
    return bool(value)
