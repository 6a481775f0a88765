"""Signature checks of third-party webhooks: Standard Webhooks and GitHub's ``X-Hub-Signature-256``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

__all__ = ["SignatureError", "check_secret", "idempotency_header", "verify_signature"]


class SignatureError(Exception):
    """The signature is missing, malformed, stale or matches none of the source's secrets."""


def check_secret(scheme: str, secret: str) -> None:
    """Raise ``ValueError`` when ``secret`` cannot be used with ``scheme``."""
    if scheme == "standard_webhooks":
        raw = secret.removeprefix("whsec_")
        try:
            decoded = base64.b64decode(raw + "==", validate=False)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("a standard_webhooks secret is base64, optionally prefixed whsec_") from exc
        if len(decoded) < 16:
            raise ValueError("a standard_webhooks secret must decode to at least 16 bytes")


def verify_signature(scheme: str, secrets: Sequence[str], body: bytes, headers: Mapping[str, str]) -> None:
    """Check ``body`` against the signature headers with each secret of the source.

    Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` (within 5 minutes) and ``webhook-signature``
    (space-separated ``v1,<base64>`` signatures, so a sender can sign with an old and a new secret during
    a rotation), checked by the ``standardwebhooks`` library. GitHub: ``X-Hub-Signature-256`` is
    ``sha256=`` plus the hex HMAC-SHA256 of the body. ``none``: nothing to check.

    Args:
        scheme: standard_webhooks, github or none.
        secrets: The source's secrets; any one may match.
        body: The raw request body, exactly as received.
        headers: The request headers (names in any case).

    Raises:
        SignatureError: With the reason, for the audit log.
    """
    if scheme == "none":
        return
    if not secrets:
        raise SignatureError("the source has no secret configured")
    lowered = {k.lower(): v for k, v in headers.items()}
    if scheme == "standard_webhooks":
        _verify_standard(secrets, body, lowered)
    elif scheme == "github":
        _verify_github(secrets, body, lowered)
    else:
        raise SignatureError(f"unknown signing scheme {scheme!r}")


def _verify_standard(secrets: Sequence[str], body: bytes, headers: dict[str, str]) -> None:
    if not all(headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    wanted = {h: headers[h] for h in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    # Signature entries we cannot parse are skipped rather than failing the whole header.
    wanted["webhook-signature"] = " ".join(s for s in wanted["webhook-signature"].split() if s.count(",") == 1)
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise SignatureError("the body is not UTF-8") from exc
    reason = "no matching signature"
    for secret in secrets:
        try:
            Webhook(secret).verify(text, wanted, json_parse=False)
        except WebhookVerificationError as exc:
            reason = str(exc) or reason
            if "timestamp" in reason.lower() or "headers" in reason.lower():
                break  # the same for every secret
            continue
        except (ValueError, binascii.Error) as exc:
            reason = f"malformed signature: {exc}"
            continue
        return
    raise SignatureError(reason)


def _verify_github(secrets: Sequence[str], body: bytes, headers: dict[str, str]) -> None:
    presented = headers.get("x-hub-signature-256", "")
    if not presented.startswith("sha256="):
        raise SignatureError("missing X-Hub-Signature-256")
    digest = presented.removeprefix("sha256=").strip().lower()
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, digest):
            return
    raise SignatureError("no matching signature")


def idempotency_header(scheme: str, headers: Mapping[str, str]) -> str | None:
    """The sender's delivery id, when it can be trusted; None means "deduplicate by the body's hash".

    A delivery id is trusted only when the signature covers it or the source is unsigned (its sender holds an
    API key). Standard Webhooks sign ``webhook-id`` with the body, so it is the key there. GitHub's
    ``X-Hub-Signature-256`` covers the body only: a captured delivery could be replayed with a fresh
    ``X-GitHub-Delivery`` (or ``Idempotency-Key``), so GitHub sources deduplicate by body hash per source
    (GitHub's own redeliveries resend the same body). Unsigned sources: ``X-GitHub-Delivery`` or
    ``Idempotency-Key``.

    Args:
        scheme: standard_webhooks, github or none.
        headers: The request headers (names in any case).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    if scheme == "standard_webhooks":
        names: tuple[str, ...] = ("webhook-id",)
    elif scheme == "none":
        names = ("x-github-delivery", "idempotency-key")
    else:
        names = ()
    for name in names:
        value = lowered.get(name, "").strip()
        if value:
            return value[:300]
    return None
