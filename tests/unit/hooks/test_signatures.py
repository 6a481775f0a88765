"""Webhook signature checks without a server: Standard Webhooks (rotation, staleness) and GitHub's HMAC."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

import pytest
from standardwebhooks import Webhook

from omninode_bridge.modules.hooks.signatures import SignatureError, check_secret, verify_signature

OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()
BODY = b'{"event": "push"}'


def _standard(secret: str, body: bytes = BODY, *, age: dt.timedelta = dt.timedelta()) -> dict[str, str]:
    when = dt.datetime.now(dt.UTC) - age
    return {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(int(when.timestamp())),
        "Webhook-Signature": Webhook(secret).sign("msg_1", when, body.decode()),
    }


def test_standard_webhooks_accept_any_current_secret_and_header_case() -> None:
    verify_signature("standard_webhooks", [NEW, OLD], BODY, _standard(OLD))
    verify_signature("standard_webhooks", [NEW], BODY, _standard(NEW))


def test_standard_webhooks_refuse_a_changed_body_an_unknown_secret_and_a_stale_timestamp() -> None:
    with pytest.raises(SignatureError):
        verify_signature("standard_webhooks", [NEW], BODY + b" ", _standard(NEW))
    with pytest.raises(SignatureError):
        verify_signature("standard_webhooks", [NEW], BODY, _standard(OLD))
    with pytest.raises(SignatureError, match=r"(?i)timestamp"):
        verify_signature("standard_webhooks", [NEW], BODY, _standard(NEW, age=dt.timedelta(minutes=10)))
    with pytest.raises(SignatureError, match="missing"):
        verify_signature("standard_webhooks", [NEW], BODY, {"webhook-id": "msg_1"})


def test_a_rotation_header_with_an_unparsable_entry_still_verifies() -> None:
    headers = _standard(NEW)
    headers["Webhook-Signature"] = "garbage " + headers["Webhook-Signature"]
    verify_signature("standard_webhooks", [NEW], BODY, headers)


def test_github_hmac_sha256_of_the_body() -> None:
    digest = hmac.new(b"gh-secret", BODY, hashlib.sha256).hexdigest()
    verify_signature("github", ["other", "gh-secret"], BODY, {"X-Hub-Signature-256": f"sha256={digest.upper()}"})
    with pytest.raises(SignatureError, match="no matching"):
        verify_signature("github", ["gh-secret"], BODY + b"x", {"X-Hub-Signature-256": f"sha256={digest}"})
    with pytest.raises(SignatureError, match="missing"):
        verify_signature("github", ["gh-secret"], BODY, {"X-Hub-Signature": "sha1=00"})


def test_unsigned_sources_pass_and_signed_ones_need_a_secret_and_a_known_scheme() -> None:
    verify_signature("none", [], BODY, {})
    with pytest.raises(SignatureError, match="no secret"):
        verify_signature("github", [], BODY, {})
    with pytest.raises(SignatureError, match="unknown"):
        verify_signature("hmac-md5", ["s"], BODY, {})


def test_standard_webhooks_secrets_must_be_base64_of_16_bytes() -> None:
    check_secret("standard_webhooks", OLD)
    check_secret("github", "anything")
    with pytest.raises(ValueError, match="16 bytes"):
        check_secret("standard_webhooks", "whsec_" + base64.b64encode(b"short").decode())
