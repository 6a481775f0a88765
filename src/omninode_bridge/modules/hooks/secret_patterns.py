"""Secret shapes found by value, whatever the key, replacing only the secret part of a string.

Vendor token shapes come from Yelp's ``detect-secrets`` plugins (their ``denylist`` regexes, so they follow the
library's updates). Its patterns are written to flag a line, not to cut a span, so for the shapes it lacks or
spans imprecisely we add our own: fine-grained GitHub tokens (``github_pat_``), Anthropic/OpenAI ``sk-`` keys
of every generation (the library knows only OpenAI's legacy ``T3BlbkFJ`` keys), JWTs with their signature
(the library's pattern stops lazily before it), whole PEM private-key blocks (the library matches the BEGIN
line only), ``Bearer``/``Authorization``/``X-API-Key`` credentials, this service's own ``onb_`` API keys,
passwords in URLs (also with an empty user, as in ``redis://:pw@host``) and ``password=``-style
assignments in commands, query strings and connection strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from re import _parser  # type: ignore[attr-defined]  # the stdlib's regex parser: a pattern's leading literal, exactly

from omninode_bridge.modules.hooks.settings import compile_redaction_pattern

__all__ = ["REDACTED", "SecretPattern", "SecretScanner", "builtin_patterns", "custom_patterns"]

#: What a redacted value (or the secret part of one) becomes.
REDACTED = "[REDACTED]"

# Fixed-width spellings of secret-ish names before ``=`` or ``":`` (look-behinds need a fixed width).
_NAMES = (
    "password", "passwd", "secret", "token", "api_key", "api-key", "apikey", "access_key", "access-key",
    "accesskey", "private_key", "private-key", "privatekey", "auth_key", "accountkey",
)  # fmt: skip
_NAME_GATE = ("passw", "secret", "token", "key")
_NOT_DONE = r"(?!\[REDACTED\])"


def _after_name(literal: str) -> str:
    """``literal`` preceded by one of ``_NAMES`` (any case): starts with the literal, so the scan is fast."""
    last = "".join(sorted({c for n in _NAMES for c in (n[-1].lower(), n[-1].upper())}))
    lit = re.escape(literal)
    names = "|".join(f"(?<=(?i:{re.escape(n)}){lit})" for n in _NAMES)
    return f"{lit}(?<=[{last}]{lit})(?:{names})"


@dataclass(frozen=True, slots=True)
class SecretPattern:
    """One secret shape.

    Python's ``re`` scans fast only for a pattern that starts with a literal; an alternation of many patterns
    (or one starting with a class, a look-behind or ``\b``) is tried at every position (measured: 7.9 ms for
    4 KB with every shape in one regex, 2-3 us per literal-led pattern). So each shape is its own regex, led
    by a literal where we write it, and the slow ones run only when a cheap check says they can match.

    Attributes:
        name: For tests and diagnostics.
        regex: The regular expression.
        flags: ``re`` flags.
        group: The capture group holding the secret (the rest of the match is kept); 0 for the whole match.
        gate: Substrings; when given, the pattern runs only on text containing one of them (compared in
            lower case when the pattern ignores case or ``gate_any_case`` is set).
        prefilter: A fast regex that must match somewhere before the pattern runs.
        gate_any_case: Compare the gate in lower case although the pattern itself is case-sensitive.
    """

    name: str
    regex: str
    flags: int = 0
    group: int = 0
    gate: tuple[str, ...] = ()
    prefilter: str | None = None
    gate_any_case: bool = False


_CREDENTIAL = r"(?=[A-Za-z._~+/-]*[0-9])([A-Za-z0-9._~+/-]{16,}=*)"  # a credential has a digit somewhere

#: Our own shapes (see the module docstring for why each one exists).
_OWN = (
    SecretPattern(
        "pem_private_key",
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(.+?)(?=-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        re.DOTALL,
        1,
    ),
    SecretPattern("github_fine_grained", r"github_pat_[A-Za-z0-9_]{22,255}"),
    SecretPattern("sk_api_key", r"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9_-]{20,}"),
    SecretPattern("jwt", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    SecretPattern("npm_token", r"npm_(?<![A-Za-z0-9_]npm_)[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    SecretPattern("omninode_api_key", r"onb_(?<![A-Za-z0-9_]onb_)[A-Za-z0-9_-]{40,}"),
    SecretPattern("url_password", r"://[^\s/?#@:\"']*:(" + _NOT_DONE + r"[^\s/?#@\"']+)@", 0, 1),
    SecretPattern("bearer", r"earer\s(?<=[Bb]earer\s)\s*" + _CREDENTIAL, 0, 1),
    SecretPattern("token_scheme", r"oken\s(?<=[Tt]oken\s)\s*" + _CREDENTIAL, 0, 1),
    SecretPattern(
        "authorization_header",
        r"\b(?:proxy-)?(?:authorization|x-api-key|api-key|x-auth-token)[\"']?\s*[:=]\s*[\"']?"
        r"(?:(?:basic|bearer|token|digest|negotiate)\s+)?" + _NOT_DONE + r"([^\s\"',;]+)",
        re.IGNORECASE,
        1,
        gate=("authorization", "api-key", "auth-token"),
    ),
    SecretPattern(
        "assignment",
        _after_name("=") + r"[\"']?" + _NOT_DONE + r"([^\s\"'&;,<>|`]+)",
        0,
        1,
        gate=_NAME_GATE,
        gate_any_case=True,
    ),
    SecretPattern(
        "quoted_pair",
        _after_name('"') + r"\s*:\s*\"" + _NOT_DONE + r"([^\"\\]+)\"",
        0,
        1,
        gate=_NAME_GATE,
        gate_any_case=True,
    ),
)

# detect-secrets plugins whose regexes span a secret exactly: (module, class, capture group of the secret when
# the pattern has one, gate, prefilter). Left out: keyword/entropy/IP plugins (noisy, and slow as value
# scans), and those our own shapes above supersede (OpenAI, JWT, private key, basic auth, npm).
_LIBRARY: tuple[tuple[str, str, int, tuple[str, ...], str | None], ...] = (
    ("aws", "AWSKeyDetector", 1, ("AKIA", "ASIA", "ABIA", "ACCA", "A3T", "aws", "AWS", "Aws"), None),
    ("azure_storage_key", "AzureStorageKeyDetector", 0, ("accountkey=",), None),
    ("discord", "DiscordBotTokenDetector", 0, (), r"\.(?<=[A-Za-z0-9_-]{23}\.)[A-Za-z0-9_-]{6}\."),
    ("github_token", "GitHubTokenDetector", 0, (), r"gh[pousr]_"),
    ("gitlab_token", "GitLabTokenDetector", 0, ("gl", "GR1348941"), None),
    ("mailchimp", "MailchimpDetector", 0, ("-us",), None),
    ("pypi_token", "PypiTokenDetector", 0, (), None),
    ("sendgrid", "SendGridDetector", 0, (), None),
    ("slack", "SlackDetector", 0, ("xox", "hooks.slack.com"), None),
    ("square_oauth", "SquareOAuthDetector", 0, (), None),
    ("stripe", "StripeDetector", 0, (), r"k_live_"),
    ("telegram_token", "TelegramBotTokenDetector", 0, (), r":(?<=[0-9]:)[0-9A-Za-z_-]{35}"),
    ("twilio", "TwilioKeyDetector", 0, (), None),
)


def builtin_patterns() -> list[SecretPattern]:
    """Our own shapes, then the vendor shapes of the ``detect-secrets`` plugins listed in ``_LIBRARY``."""
    import importlib  # detect-secrets costs ~0.3 s to import: only when a scanner is built

    patterns = list(_OWN)
    for module_name, class_name, group, gate, prefilter in _LIBRARY:
        detector = getattr(importlib.import_module(f"detect_secrets.plugins.{module_name}"), class_name)
        for index, compiled in enumerate(detector.denylist):
            patterns.append(
                SecretPattern(
                    f"{class_name}[{index}]", compiled.pattern, compiled.flags, group if compiled.groups else 0,
                    gate, prefilter,
                )
            )  # fmt: skip
    return patterns


def custom_patterns(regexes: Iterable[str]) -> list[SecretPattern]:
    """Operator-supplied patterns: the first capture group, if any, is the secret; else the whole match.

    Raises:
        ValueError: A pattern does not compile, or can match the empty string.
    """
    patterns = []
    for index, regex in enumerate(regexes):
        compiled = compile_redaction_pattern(regex, f"redaction pattern {index}")
        patterns.append(SecretPattern(f"custom[{index}]", regex, 0, 1 if compiled.groups else 0))
    return patterns


def _leading_literal(regex: str, flags: int) -> str:
    """The characters every match of ``regex`` starts with ("" when it starts otherwise or ignores case)."""
    parsed = _parser.parse(regex, flags)
    if (flags | parsed.state.flags) & re.IGNORECASE:
        return ""
    literal = []
    for op, argument in parsed:
        if op is not _parser.LITERAL:
            break
        literal.append(chr(argument))
    return "".join(literal)


def _literals(words: Iterable[str]) -> re.Pattern[str] | None:
    """A regex that finds any of ``words`` (None for no words, which cannot happen with a needle-led pattern)."""
    ordered = sorted(words, key=lambda word: (-len(word), word))
    return re.compile("|".join(re.escape(word) for word in ordered)) if ordered else None


class SecretScanner:
    """Replaces secrets inside strings with :data:`REDACTED`.

    Args:
        patterns: The shapes; where two overlap, the one starting first wins (then the earlier pattern).
    """

    def __init__(self, patterns: Sequence[SecretPattern]) -> None:
        self.patterns = tuple(patterns)
        self._compiled = [
            (
                re.compile(p.regex, p.flags),
                p.group,
                p.gate,
                re.compile(p.prefilter) if p.prefilter else None,
                bool(p.flags & re.IGNORECASE) or p.gate_any_case,
            )
            for p in self.patterns
        ]
        # Each pattern's needle: a literal every match contains (the characters the regex, or its prefilter,
        # starts with). One ``in`` per distinct needle picks the patterns worth running on a string; most
        # strings contain none, and skipping a pattern whose needle is absent cannot change what is found.
        by_needle: dict[str, list[int]] = {}
        always: list[int] = []
        for rank, p in enumerate(self.patterns):
            needle = _leading_literal(p.regex, p.flags) or (_leading_literal(p.prefilter, 0) if p.prefilter else "")
            if needle:
                by_needle.setdefault(needle, []).append(rank)
            else:
                always.append(rank)
        self._needles = tuple((needle, tuple(ranks)) for needle, ranks in by_needle.items())
        self._always = tuple(always)
        # Gates numbered, their words compared as they will be (lower case when folded): a library plugin's
        # patterns share one gate, checked once per string.
        gates: dict[tuple[tuple[str, ...], bool], int] = {}
        self._gate_of: list[int] = []
        for _, _, gate, _, folded in self._compiled:
            words = tuple(w.lower() for w in gate) if folded else gate
            self._gate_of.append(gates.setdefault((words, folded), len(gates)) if gate else -1)
        self._gates = tuple(gates)
        # Whether a string can hold a secret at all: a pattern runs only when its needle occurs in the string
        # or, for a pattern without one, when its gate passes. When every such pattern has a gate, one search
        # for any needle or gate word (a regex alternation of the literals, scanned in C) rules most strings
        # out exactly: where it finds none, no pattern would run and there is no span. Folded gate words are
        # looked for in the lower-cased string, as the gates themselves look for them (with ``in``: the few
        # words share first letters, which makes an alternation slow on strings of those letters).
        self._any_exact: re.Pattern[str] | None = None
        self._any_folded: tuple[str, ...] = ()
        if all(self._gate_of[rank] >= 0 for rank in always):
            exact = {needle for needle, _ in self._needles}
            lower_words: set[str] = set()
            for rank in always:
                words, is_folded = self._gates[self._gate_of[rank]]
                (lower_words if is_folded else exact).update(words)
            self._any_exact = _literals(exact)
            self._any_folded = tuple(sorted(lower_words))

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The (start, end) of each secret in ``text``, in order, without overlaps."""
        if self._any_exact is not None and self._any_exact.search(text) is None:
            folded_text = text.lower()
            for word in self._any_folded:
                if word in folded_text:
                    break
            else:
                return []
        found: list[tuple[int, int, int]] = []
        lowered: str | None = None
        gate_passed: list[bool | None] = [None] * len(self._gates)
        prefilter_passed: dict[re.Pattern[str], bool] = {}
        ranks = list(self._always)
        for needle, needing in self._needles:
            if needle in text:
                ranks.extend(needing)
        ranks.sort()  # the patterns' order breaks ties between overlapping spans
        for rank in ranks:
            regex, group, _, prefilter, _ = self._compiled[rank]
            gate_id = self._gate_of[rank]
            if gate_id >= 0:
                can = gate_passed[gate_id]
                if can is None:
                    words, folded = self._gates[gate_id]
                    if folded:
                        if lowered is None:
                            lowered = text.lower()
                        haystack = lowered
                    else:
                        haystack = text
                    can = False
                    for word in words:
                        if word in haystack:
                            can = True
                            break
                    gate_passed[gate_id] = can
                if not can:
                    continue
            if prefilter is not None:
                can = prefilter_passed.get(prefilter)
                if can is None:
                    can = prefilter_passed[prefilter] = prefilter.search(text) is not None
                if not can:
                    continue
            for match in regex.finditer(text):
                start, end = match.span(group)
                if start < 0:  # an optional group that took no part: the whole match
                    start, end = match.span()
                if end > start:
                    found.append((start, rank, end))
        found.sort()
        spans: list[tuple[int, int]] = []
        for start, _, end in found:
            if not spans or start >= spans[-1][1]:
                spans.append((start, end))
        return spans

    def redact(self, text: str) -> tuple[str, bool]:
        """``text`` with each secret replaced, and whether there was any (the same object when none)."""
        spans = self.spans(text) if text else []
        if not spans:
            return text, False
        pieces: list[str] = []
        position = 0
        for start, end in spans:
            pieces.append(text[position:start])
            pieces.append(REDACTED)
            position = end
        pieces.append(text[position:])
        return "".join(pieces), True
