"""The hooks module's settings group (``OMNINODE_HOOKS_*``) and the check of operator redaction patterns."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar

import msgspec

__all__ = ["DEFAULT_REDACT_KEYS", "HooksSettings", "compile_redaction_pattern"]

#: Keys whose values are replaced before a hook is stored, published or logged (OMNINODE_HOOKS_REDACT_KEYS).
DEFAULT_REDACT_KEYS = (
    "password,passwd,secret,client_secret,token,access_token,refresh_token,id_token,api_key,apikey,"
    "x_api_key,authorization,proxy_authorization,cookie,set_cookie,private_key,secret_key,access_key,"
    "credentials,session_token"
)


def compile_redaction_pattern(regex: str, label: str) -> re.Pattern[str]:
    """Compile an operator-supplied redaction pattern.

    Args:
        regex: The pattern.
        label: How to name it in the error (the setting and its index).

    Raises:
        ValueError: It does not compile, or it matches the empty string (it would redact nothing, everywhere).
    """
    try:
        compiled = re.compile(regex)
    except re.error as exc:
        raise ValueError(f"{label} ({regex!r}) is invalid: {exc}") from None
    if compiled.fullmatch(""):
        raise ValueError(f"{label} ({regex!r}) matches the empty string")
    return compiled


class HooksSettings(msgspec.Struct, kw_only=True, frozen=True):
    """The hooks module: body limit, secret redaction, idempotency, retention and the live stream."""

    env_prefix: ClassVar[str] = "OMNINODE_HOOKS_"

    max_body_bytes: Annotated[
        int, msgspec.Meta(ge=1024, description="Largest body of one hook or webhook, in bytes (else 413).")
    ] = 1024 * 1024
    redact_keys: Annotated[
        str,
        msgspec.Meta(
            description="Comma-separated keys whose values are redacted in hook data at any depth; a key also "
            "matches when it ends in _<key> (camelCase and dashes are normalised: accessToken, X-Api-Key)."
        ),
    ] = DEFAULT_REDACT_KEYS
    redact_values: Annotated[
        bool,
        msgspec.Meta(
            description="Also redact secrets by their shape inside any string of hook data and webhook bodies "
            "(GitHub/GitLab/Slack/AWS/Stripe... tokens, sk- keys, JWTs, Bearer credentials, PEM private keys, "
            "passwords in URLs and password=... assignments), whatever the key; only the secret part is replaced."
        ),
    ] = True
    redact_patterns: Annotated[
        str,
        msgspec.Meta(
            description='More secret shapes, as a JSON array of Python regular expressions (["acme_[0-9a-f]{32}"]); '
            "a pattern's first capture group, if any, is the part replaced, else the whole match."
        ),
    ] = ""
    idempotency_window_seconds: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            description="How long an Idempotency-Key (webhooks: webhook-id or X-GitHub-Delivery, else source + "
            "body hash) identifies a duplicate; hooks are never deduplicated by content (0 turns duplicate "
            "detection off).",
        ),
    ] = 86_400.0
    retention_days: Annotated[
        float, msgspec.Meta(gt=0, description="Hook events, sessions and tool calls older than this are purged.")
    ] = 30.0
    purge_batch_size: Annotated[
        int, msgspec.Meta(ge=1, le=100_000, description="Rows deleted per transaction by the retention purge.")
    ] = 5000
    purge_interval_seconds: Annotated[
        float, msgspec.Meta(gt=0, description="Time between two runs of the background retention purge.")
    ] = 3600.0
    stream_ticket_seconds: Annotated[
        int, msgspec.Meta(ge=5, description="Lifetime of a /hooks/stream ticket (for browsers' EventSource).")
    ] = 60
    live_buffer_events: Annotated[
        int,
        msgspec.Meta(
            ge=100, description="Live-stream entries (one or more hooks each) kept in Redis for viewers that resume."
        ),
    ] = 10_000

    def __post_init__(self) -> None:
        # Refuse bad patterns at start-up (msgspec reports the ValueError as OMNINODE_HOOKS_REDACT_PATTERNS).
        for index, regex in enumerate(self.redact_pattern_list()):
            compile_redaction_pattern(regex, f"OMNINODE_HOOKS_REDACT_PATTERNS[{index}]")

    def redact_key_set(self) -> frozenset[str]:
        """The normalised redaction keys."""
        return frozenset(k.strip().lower().replace("-", "_") for k in self.redact_keys.split(",") if k.strip())

    def redact_pattern_list(self) -> list[str]:
        """The extra redaction patterns (``redact_patterns`` decoded).

        Raises:
            ValueError: It is not a JSON array of strings.
        """
        if not self.redact_patterns.strip():
            return []
        try:
            return msgspec.json.decode(self.redact_patterns, type=list[str])
        except msgspec.DecodeError as exc:
            message = f"OMNINODE_HOOKS_REDACT_PATTERNS is not a JSON array of regular expressions: {exc}"
            raise ValueError(message) from None
