"""Semantic versions (2.0.0) and the one range syntax discovery accepts (npm/cargo style).

A range is one or more comparators separated by spaces (all must hold), or alternatives separated by ``||``:

* ``1.2.3`` or ``=1.2.3``: exactly that version;
* ``>1.2``, ``>=1.2.0``, ``<2``, ``<=1.9.3``: comparisons (missing minor/patch are 0);
* ``^1.2.3``: compatible, ``>=1.2.3 <2.0.0`` (``^0.2.3`` is ``>=0.2.3 <0.3.0``; ``^0.0.3`` is ``=0.0.3``);
* ``~1.2.3``: patch updates, ``>=1.2.3 <1.3.0`` (``~1`` is ``>=1.0.0 <2.0.0``);
* ``1.x``, ``1.2.*``, ``*``: wildcards.

Pre-releases order before their release (``1.2.0-rc.1 < 1.2.0``) and build metadata is ignored, as in SemVer 2.0.0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Range", "RangeError", "Version", "parse_range", "parse_version"]

_VERSION = re.compile(
    r"(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
_PARTIAL = re.compile(r"(\d{1,9}|[xX*])(?:\.(\d{1,9}|[xX*]))?(?:\.(\d{1,9}|[xX*]))?(?:-([0-9A-Za-z.-]+))?")
_COMPARATOR = re.compile(r"(\^|~|>=|<=|>|<|=)?\s*(\S+)")
#: The documented pattern of a semantic version (for schemas).
VERSION_PATTERN = _VERSION.pattern


class RangeError(ValueError):
    """Not a version range of the documented syntax."""


class Version(NamedTuple):
    """A semantic version; tuples compare by precedence (pre-releases sort before the release)."""

    major: int
    minor: int
    patch: int
    pre: tuple[tuple[int, int | str], ...] = ((2, 0),)  # (2, 0) marks "no pre-release": after any pre-release

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre == ((2, 0),):
            return core
        return core + "-" + ".".join(str(part) for _, part in self.pre)


def _pre(text: str | None) -> tuple[tuple[int, int | str], ...]:
    if not text:
        return ((2, 0),)
    # Numeric identifiers sort before alphanumeric ones, and both before "no pre-release".
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in text.split("."))


def parse_version(text: str) -> Version:
    """The version ``text`` (``MAJOR.MINOR.PATCH[-pre][+build]``).

    Raises:
        RangeError: Not a semantic version.
    """
    match = _VERSION.fullmatch(text.strip().removeprefix("v"))
    if match is None:
        raise RangeError(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    return Version(int(match[1]), int(match[2]), int(match[3]), _pre(match[4]))


_LOWEST = ((0, 0),)  # the lowest pre-release tag: "<2.0.0" excludes 2.0.0-rc.1 too


@dataclass(frozen=True, slots=True)
class _Bound:
    op: str  # one of > >= < <= =
    version: Version

    def holds(self, v: Version) -> bool:
        w = self.version
        return {
            ">": v > w, ">=": v >= w, "<": v < w, "<=": v <= w, "=": v == w,
        }[self.op]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Range:
    """A parsed range: alternatives (``||``) of bound sets that must all hold."""

    text: str
    alternatives: tuple[tuple[_Bound, ...], ...]

    def contains(self, version: Version | str) -> bool:
        """Whether ``version`` satisfies the range (an unparsable version never does)."""
        if isinstance(version, str):
            try:
                version = parse_version(version)
            except RangeError:
                return False
        return any(all(b.holds(version) for b in bounds) for bounds in self.alternatives)


def _expand(op: str, raw: str) -> list[_Bound]:
    match = _PARTIAL.fullmatch(raw.removeprefix("v"))
    if match is None:
        raise RangeError(f"{raw!r} is not a version or a partial version")
    parts: list[int | None] = [None if p is None or p in "xX*" else int(p) for p in match.groups()[:3]]
    pre = _pre(match[4])
    major, minor, patch = parts
    if major is None:
        return []  # "*": any version
    if minor is None:
        lo, hi = Version(major, 0, 0), Version(major + 1, 0, 0, _LOWEST)
        given = 1
    elif patch is None:
        lo, hi = Version(major, minor, 0), Version(major, minor + 1, 0, _LOWEST)
        given = 2
    else:
        lo, hi, given = Version(major, minor, patch, pre), None, 3
    if op in ("", "="):
        return [_Bound("=", lo)] if hi is None else [_Bound(">=", lo), _Bound("<", hi)]
    if op == ">":
        return [_Bound(">", lo)] if hi is None else [_Bound(">=", hi)]
    if op == ">=":
        return [_Bound(">=", lo)]
    if op == "<":
        return [_Bound("<", Version(lo.major, lo.minor, lo.patch, _LOWEST) if given < 3 else lo)]
    if op == "<=":
        return [_Bound("<=", lo)] if hi is None else [_Bound("<", hi)]
    if op == "~":
        upper = Version(major + 1, 0, 0, _LOWEST) if given == 1 else Version(major, (minor or 0) + 1, 0, _LOWEST)
        return [_Bound(">=", lo), _Bound("<", upper)]
    # "^": the left-most non-zero part may not change
    if major > 0 or given == 1:
        upper = Version(major + 1, 0, 0, _LOWEST)
    elif (minor or 0) > 0 or given == 2:
        upper = Version(0, (minor or 0) + 1, 0, _LOWEST)
    else:
        upper = Version(0, 0, (patch or 0) + 1, _LOWEST)
    return [_Bound(">=", lo), _Bound("<", upper)]


def parse_range(text: str) -> Range:
    """Parse a range of the documented syntax.

    Raises:
        RangeError: Empty, too long, or not of that syntax.
    """
    if not text.strip() or len(text) > 256:
        raise RangeError("a version range must be 1-256 characters")
    alternatives: list[tuple[_Bound, ...]] = []
    for alternative in text.split("||"):
        bounds: list[_Bound] = []
        position, body = 0, alternative.strip()
        if not body:
            raise RangeError("an empty alternative in the range")
        while position < len(body):
            match = _COMPARATOR.match(body, position)
            if match is None:
                raise RangeError(f"cannot read the range at {body[position:]!r}")
            bounds.extend(_expand(match[1] or "", match[2]))
            position = match.end()
            while position < len(body) and body[position] == " ":
                position += 1
        alternatives.append(tuple(bounds))
    return Range(text, tuple(alternatives))
