"""Parsing a webhook body into the JSON document its ``data`` is made of, whatever the content type."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from omninode_bridge.core.inputs import MalformedBodyError, check_json_body, check_json_value

__all__ = ["body_text", "parse_webhook_body"]

_FORM = "application/x-www-form-urlencoded"


def parse_webhook_body(body: bytes, content_type: str | None) -> Any:
    """The document a webhook body carries, or None when it carries none we can read.

    * JSON (any content type, as senders label JSON loosely): the decoded value.
    * ``application/x-www-form-urlencoded``: GitHub's form deliveries put the JSON in a ``payload`` field,
      which becomes the document; other forms become an object of their fields (a repeated field as a list).
    * Anything else (or malformed JSON): None; the caller still scans the text for secrets.

    The document gets the same checks as every JSON request body (no NUL in a string or key, bounded depth).

    Args:
        body: The raw, verified body.
        content_type: The request's ``Content-Type`` header.

    Raises:
        InputError: The document holds a NUL or is nested too deep (a 422).
    """
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type == _FORM:
        try:
            fields = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return None
        form: dict[str, Any] = {}
        for name, value in fields:
            previous = form.get(name)
            if previous is None:
                form[name] = value
            elif isinstance(previous, list):
                previous.append(value)
            else:
                form[name] = [previous, value]
        payload = form.get("payload")
        if isinstance(payload, str) and payload.lstrip()[:1] in ("{", "["):
            try:
                return check_json_body(payload.encode())
            except MalformedBodyError:
                pass
        check_json_value(form)
        return form or None
    if body.lstrip()[:1] in (b"{", b"["):
        try:
            return check_json_body(body)
        except MalformedBodyError:
            return None
    return None


def body_text(body: bytes) -> str | None:
    """The body as text (for a secret scan of a body we could not parse), or None when it is not UTF-8.

    NUL becomes U+FFFD: PostgreSQL refuses NUL in text, and the redacted text may be stored.
    """
    try:
        return body.decode().replace("\x00", "\ufffd")
    except UnicodeDecodeError:
        return None
