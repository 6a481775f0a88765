"""Blocking-query parameters shared by the registry's and the Consul-compatible list endpoints."""

from __future__ import annotations

import re

from omninode_bridge.core.inputs import InputError

__all__ = ["WAIT_PATTERN", "parse_wait"]

#: ``wait``: a Go-style duration (``100ms``, ``30s``, ``5m``) or plain seconds.
WAIT_PATTERN = r"[0-9]{1,6}(?:\.[0-9]{1,3})?(?:ms|s|m)?"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "": 1.0}


def parse_wait(raw: str | None, *, default: float, maximum: float) -> float:
    """Seconds of a ``wait`` value, capped at ``maximum`` (Consul's default wait is 5 minutes).

    Raises:
        InputError: Not a duration.
    """
    if not raw:
        return min(default, maximum)
    match = re.fullmatch(r"([0-9]{1,6}(?:\.[0-9]{1,3})?)(ms|s|m)?", raw)
    if match is None:
        raise InputError("must be a duration such as 100ms, 30s or 5m", field="wait", source="query")
    return min(float(match[1]) * _UNITS[match[2] or ""], maximum)
