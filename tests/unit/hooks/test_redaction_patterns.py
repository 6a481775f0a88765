"""Value-pattern redaction: each secret shape is replaced, only its secret part, at any depth; lookalikes stay."""

from __future__ import annotations

import re

import pytest

from omninode_bridge.modules.hooks.redaction import REDACTED, Redactor
from omninode_bridge.modules.hooks.secret_patterns import SecretScanner, builtin_patterns, custom_patterns
from omninode_bridge.modules.hooks.signatures import idempotency_header
from omninode_bridge.settings import HooksSettings, SettingsError, load_settings

GHP = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5"
SCANNER = SecretScanner(builtin_patterns())

# (text, what it must become): only the secret part is replaced.
CASES = [
    (f"export GITHUB_TOKEN={GHP} && gh pr list", f"export GITHUB_TOKEN={REDACTED} && gh pr list"),
    (f"echo {GHP}", f"echo {REDACTED}"),
    (
        "gh auth login --with-token github_pat_11ABCDEFG0123456789abc_" + "x" * 59,
        f"gh auth login --with-token {REDACTED}",
    ),
    ("ANTHROPIC_API_KEY=sk-ant-api03-" + "Z9" * 45 + " claude", f"ANTHROPIC_API_KEY={REDACTED} claude"),
    ("key sk-proj-" + "a1" * 30 + " end", f"key {REDACTED} end"),
    ("id AKIAIOSFODNN7EXAMPLE here", f"id {REDACTED} here"),
    ("xoxb-123456789012-1234567890123-abcdefghijklmnop", REDACTED),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end",
        f"jwt {REDACTED} end",
    ),
    ("curl -H 'Authorization: Bearer abcdef0123456789xyz' x", f"curl -H 'Authorization: Bearer {REDACTED}' x"),
    ("curl -H 'X-API-Key: abc123def456ghi789' x", f"curl -H 'X-API-Key: {REDACTED}' x"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n",
        f"-----BEGIN RSA PRIVATE KEY-----{REDACTED}-----END RSA PRIVATE KEY-----\n",
    ),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk", f"-----BEGIN OPENSSH PRIVATE KEY-----{REDACTED}"),
    ("postgresql://app:s3cr3t@db:5432/x", f"postgresql://app:{REDACTED}@db:5432/x"),
    ("redis://:pw123@cache:6379/0", f"redis://:{REDACTED}@cache:6379/0"),
    ("Server=x;User Id=z;Password=myPass;", f"Server=x;User Id=z;Password={REDACTED};"),
    ("mysql --password=hunter2 -h db", f"mysql --password={REDACTED} -h db"),
    ("https://x.test/cb?access_token=abc123&state=1", f"https://x.test/cb?access_token={REDACTED}&state=1"),
    ('config = {"password": "hunter2", "user": "x"}', f'config = {{"password": "{REDACTED}", "user": "x"}}'),
    ('{"DB_Password": "hunter2"}', f'{{"DB_Password": "{REDACTED}"}}'),
    ("SG." + "a" * 22 + "." + "b" * 43, REDACTED),
    ("stripe sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", f"stripe {REDACTED}"),
]

# Lookalikes that are not secrets.
CLEAN = [
    "input_tokens=5 max_tokens=100 the token count is 5",
    "Bearer tokens are great; a token bucket",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "http://localhost:8000/hooks and git@github.com:foo/bar.git",
    "def get_token(self) -> str: return self._token",
    "password = request.form['password']",
    "",
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_d08_value_shapes_are_redacted_in_place(text: str, expected: str) -> None:
    assert SCANNER.redact(text) == (expected, True)


@pytest.mark.parametrize("text", CLEAN)
def test_d08_lookalikes_are_kept(text: str) -> None:
    redacted, hit = SCANNER.redact(text)
    assert (redacted, hit) == (text, False)
    assert redacted is text  # nothing copied when nothing matched


def test_d08_redaction_is_idempotent() -> None:
    once, _ = SCANNER.redact(CASES[0][0] + " mysql --password=hunter2")
    assert SCANNER.redact(once) == (once, False)


def test_d08_values_redacted_at_any_depth_under_any_key() -> None:
    redactor = Redactor.from_settings(HooksSettings())
    data = {
        "tool_input": {"command": f"export GITHUB_TOKEN={GHP} && gh pr list"},
        "lines": ["ok", [f"nested {GHP}"]],
        "count": 3,
        "token": "by-key-name",
    }
    out, hit = redactor.redact(data)
    assert hit
    assert out == {
        "tool_input": {"command": f"export GITHUB_TOKEN={REDACTED} && gh pr list"},
        "lines": ["ok", [f"nested {REDACTED}"]],
        "count": 3,
        "token": REDACTED,
    }
    assert data["tool_input"]["command"].startswith("export GITHUB_TOKEN=ghp_")  # the input is not mutated
    clean = {"a": ["b", {"c": "d"}]}
    assert redactor.redact(clean) == (clean, False)


def test_d08_value_redaction_can_be_turned_off_and_extended() -> None:
    off = Redactor.from_settings(HooksSettings(redact_values=False))
    assert off.redact({"command": f"echo {GHP}"}) == ({"command": f"echo {GHP}"}, False)
    extended = Redactor.from_settings(HooksSettings(redact_patterns='["acme_[0-9a-f]{8}", "pin=(\\\\d{4})"]'))
    out, hit = extended.redact({"a": "use acme_0123abcd now", "b": "pin=1234!"})
    assert hit
    assert out == {"a": f"use {REDACTED} now", "b": f"pin={REDACTED}!"}


@pytest.mark.parametrize("value", ['["("]', '["a*"]', "not json", "[1, 2]"])
def test_d08_bad_extra_patterns_are_refused_at_start_up(value: str) -> None:
    with pytest.raises(SettingsError, match="OMNINODE_HOOKS_REDACT_PATTERNS"):
        load_settings({"OMNINODE_HOOKS_REDACT_PATTERNS": value}, env_file=None)
    with pytest.raises(ValueError, match="invalid"):
        custom_patterns(["("])


def test_d08_library_patterns_are_loaded() -> None:
    names = {p.name.partition("[")[0] for p in builtin_patterns()}
    assert {"AWSKeyDetector", "GitHubTokenDetector", "SlackDetector", "StripeDetector"} <= names


def test_d11_delivery_ids_are_trusted_only_when_signed_or_unsigned_source() -> None:
    headers = {"X-GitHub-Delivery": "d-1", "Idempotency-Key": "k-1", "webhook-id": "msg_1"}
    assert idempotency_header("github", headers) is None
    assert idempotency_header("standard_webhooks", headers) == "msg_1"
    assert idempotency_header("none", headers) == "d-1"
    assert idempotency_header("none", {"Idempotency-Key": "k-1"}) == "k-1"


def _every_pattern_spans(scanner: SecretScanner, text: str) -> list[tuple[int, int]]:
    """The reference scan: every pattern run on the text (no needle, gate or prefilter skipped)."""
    found = []
    for rank, pattern in enumerate(scanner.patterns):
        for match in re.finditer(pattern.regex, text, pattern.flags):
            start, end = match.span(pattern.group)
            if start < 0:
                start, end = match.span()
            if end > start:
                found.append((start, rank, end))
    spans: list[tuple[int, int]] = []
    for start, _, end in sorted(found):
        if not spans or start >= spans[-1][1]:
            spans.append((start, end))
    return spans


def test_skipping_patterns_by_needle_finds_what_running_every_pattern_finds() -> None:
    scanner = SecretScanner(builtin_patterns() + custom_patterns([r"corp-[0-9]{6}", r"(?i)internal_(\w+)"]))
    texts = [
        "x" * 200,
        "export GITHUB_TOKEN=ghp_" + "a" * 36 + " && gh pr list",
        "curl -H 'Authorization: Bearer abcdefghijklmnop1234' https://u:pw@example.com/?api_key=s3cr3t",
        '{"password": "hunter2", "AccessKey": "AKIAIOSFODNN7EXAMPLE"} sk-' + "b" * 30,
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- corp-123456 INTERNAL_thing",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig xoxb-123-456-abc npm_" + "c" * 36,
    ]
    for text in texts:
        assert scanner.spans(text) == _every_pattern_spans(scanner, text), text
