"""Secret redaction of hook data, applied before anything is stored, published or logged."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from omninode_bridge.modules.hooks.secret_patterns import REDACTED, SecretScanner, builtin_patterns, custom_patterns

if TYPE_CHECKING:
    from omninode_bridge.modules.hooks.settings import HooksSettings

__all__ = ["REDACTED", "Redactor"]

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_MAX_CACHED_KEYS = 4096


class Redactor:
    """Replaces secrets at any depth of dicts and lists: the values of secret-looking keys, and secret-shaped
    parts of any string (``export GITHUB_TOKEN=ghp_... && gh pr list`` keeps everything but the token).

    A key matches when, normalised (camelCase split, lower case, dashes as underscores), it equals one of
    ``keys`` or ends in ``_`` plus one of them: with ``token`` listed, ``token``, ``access_token`` and
    ``githubToken`` are redacted but ``input_tokens`` and ``token_count`` are not.

    Args:
        keys: The secret key names (normalised the same way).
        scanner: Finds secrets by their shape inside strings; None redacts by key name only.
    """

    def __init__(self, keys: Iterable[str], scanner: SecretScanner | None = None) -> None:
        self.keys = frozenset(self.normalise(k) for k in keys if k)
        self._suffixes = tuple("_" + k for k in self.keys)
        self._decisions: dict[str, bool] = {}
        self.scanner = scanner

    @classmethod
    def from_settings(cls, settings: HooksSettings) -> Redactor:
        """The redactor the hooks settings describe (``OMNINODE_HOOKS_REDACT_*``)."""
        scanner = None
        if settings.redact_values:
            scanner = SecretScanner(builtin_patterns() + custom_patterns(settings.redact_pattern_list()))
        return cls(settings.redact_key_set(), scanner)

    @staticmethod
    def normalise(key: str) -> str:
        """``X-Api-Key`` and ``apiKey`` both become ``x_api_key`` / ``api_key``."""
        return _CAMEL.sub("_", key).lower().replace("-", "_").strip()

    def is_secret(self, key: str) -> bool:
        """Whether values under ``key`` are redacted."""
        decision = self._decisions.get(key)
        if decision is None:
            name = self.normalise(key)
            decision = name in self.keys or name.endswith(self._suffixes)
            if len(self._decisions) < _MAX_CACHED_KEYS:
                self._decisions[key] = decision
        return decision

    def redact(self, value: Any) -> tuple[Any, bool]:
        """Return ``value`` with secrets replaced, and whether anything was; unchanged parts are shared."""
        if isinstance(value, str):
            return self.scanner.redact(value) if self.scanner is not None else (value, False)
        if isinstance(value, dict):
            changed = False
            out: dict[str, Any] | None = None
            for key, item in value.items():
                if isinstance(key, str) and self.is_secret(key) and item is not None:
                    new, hit = REDACTED, True
                elif isinstance(item, str | dict | list):
                    new, hit = self.redact(item)
                else:
                    new, hit = item, False
                if hit:
                    if out is None:
                        out = dict(value)
                    out[key] = new
                    changed = True
            return (out if out is not None else value), changed
        if isinstance(value, list):
            changed = False
            items: list[Any] | None = None
            for index, item in enumerate(value):
                if isinstance(item, str | dict | list):
                    new, hit = self.redact(item)
                    if hit:
                        if items is None:
                            items = list(value)
                        items[index] = new
                        changed = True
            return (items if items is not None else value), changed
        return value, False
