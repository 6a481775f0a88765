"""The batch ingest's fast paths give exactly what the general paths give: typed decoding, the scanner's
prefilter, and the pre-encoded event payload."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from typing import Any

import msgspec
import pytest

from omninode_bridge.core.events import decode_envelope, payload_hash
from omninode_bridge.core.events.envelope import canonical_payload, encode_envelope
from omninode_bridge.core.inputs import InputError, MalformedBodyError
from omninode_bridge.modules.hooks.messages import AcceptedHook, encoded_envelope_of, envelope_of
from omninode_bridge.modules.hooks.secret_patterns import SecretScanner, builtin_patterns, custom_patterns
from omninode_bridge.modules.hooks.services import decode_batch, decode_hook, parse_batch, parse_hook
from tests.unit.hooks.test_redaction_patterns import CASES, CLEAN

SCANNER = SecretScanner(builtin_patterns())
_HOOK = {
    "source": "agent", "event_type": "post_tool_use", "session_id": "s-1", "tool_name": "Bash", "tool_call_id": "c-1",
    "timestamp": "2026-01-02T03:04:05+02:00", "data": {"z": 1, "a": {"b": [1, "x"]}},
}  # fmt: skip


_GENERAL = SecretScanner(SCANNER.patterns)
_GENERAL._any_exact = None  # the prefilter off: the general path (built once: building one costs ~10 ms)


def _slow_spans(text: str) -> list[tuple[int, int]]:
    """The scanner's answer without its prefilter (every needle and gate checked one by one)."""
    return _GENERAL.spans(text)


def test_scanner_prefilter_finds_what_the_general_path_finds() -> None:
    texts = [text for text, _ in CASES] + CLEAN + ["x" * 200, "Bash", "ls -la /tmp && echo done", "ΚΕΛΒΙΝ K"]
    # Fragments of every needle and gate word, alone, glued and in other cases: the prefilter must never skip
    # a string the general path would scan.
    words = [needle for needle, _ in SCANNER._needles] + list(SCANNER._any_folded) + ["AKIA", "gl", "-us"]
    texts += words + [w.upper() for w in words] + [w.title() for w in words]
    texts += ["".join(pair) for pair in itertools.product(words[:12], repeat=2)]
    for text in texts:
        assert SCANNER.spans(text) == _slow_spans(text), text


def test_scanner_without_gated_patterns_only_has_no_prefilter() -> None:
    scanner = SecretScanner(builtin_patterns() + custom_patterns([r"[0-9]{3}-[0-9]{4}"]))
    assert scanner._any_exact is None  # a custom pattern may match anywhere: every string is scanned
    assert scanner.redact("call 555-1234") == ("call [REDACTED]", True)


def _batch(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def test_typed_batch_decode_equals_the_strict_conversion() -> None:
    body = _batch(_HOOK, {**_HOOK, "namespace": "team.a", "correlation_id": "c:1"}, {"source": "s", "event_type": "e"})
    assert decode_batch(body) == parse_batch(json.loads(body))
    assert decode_hook(json.dumps(_HOOK).encode()) == parse_hook(_HOOK)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", MalformedBodyError),
        (b"{", MalformedBodyError),
        (_batch({**_HOOK, "data": {"k": "\u0000"}}), InputError),
        (_batch({**_HOOK, "data": {"d": json.loads("[" * 70 + "]" * 70)}}), InputError),
        (_batch({**_HOOK, "timestamp": "1969-12-31T23:59:59Z"}), InputError),
    ],
)
def test_batch_bodies_the_fast_path_refuses_get_the_general_errors(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_batch(body)


def test_batch_with_a_bad_string_gets_the_field_named() -> None:
    from litestar.exceptions import ValidationException

    with pytest.raises(ValidationException) as caught:
        decode_batch(_batch(_HOOK, {**_HOOK, "source": "bad source!"}))
    assert caught.value.extra[0]["key"] == "events[1].source"  # type: ignore[index]


def test_deep_data_just_under_the_limit_is_accepted() -> None:
    # The batch object, the events array, the event and data are 4 levels: 60 more make 64, the limit.
    deep = json.loads("[" * 60 + "]" * 60)
    assert decode_batch(_batch({**_HOOK, "data": {"d": deep}})).events[0].data == {"d": deep}


@pytest.mark.parametrize("truncated", [False, True])
def test_pre_encoded_envelope_is_the_envelope(truncated: bool) -> None:
    now = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    hook = AcceptedHook(
        event_id=uuid.uuid4(), kind="hook", source="s", event_type="e", correlation_id="c", occurred_at=now,
        data={"z": 1, "a": {"é": "ü\u2028", "b": [{"y": None, "x": 1.5}]}}, redacted=False, session_id="x",
        data_truncated=truncated, received_at=now,
    )  # fmt: skip
    assert hook.canonical_payload() == canonical_payload(msgspec.to_builtins(hook.payload()))
    head = encoded_envelope_of(hook)
    assert head.payload_hash == payload_hash(msgspec.to_builtins(hook.payload()))
    assert decode_envelope(encode_envelope(head)) == envelope_of(hook)
    assert msgspec.json.decode(hook.live())["data"] == (None if truncated else hook.data)
