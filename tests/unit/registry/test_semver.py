"""Semantic versions and the discovery range syntax."""

from __future__ import annotations

import pytest

from omninode_bridge.modules.registry.semver import RangeError, parse_range, parse_version


@pytest.mark.parametrize(
    ("expression", "inside", "outside"),
    [
        ("^1.2", ["1.2.0", "1.9.3", "1.2.7"], ["2.0.0", "1.1.9", "2.0.0-rc.1", "0.9.0"]),
        ("^1.2.3", ["1.2.3", "1.99.0"], ["1.2.2", "2.0.0"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2"]),
        ("~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0", "1.2.2"]),
        ("~1", ["1.0.0", "1.9.9"], ["2.0.0"]),
        (">=1.2.0 <2", ["1.2.0", "1.9.9"], ["2.0.0", "1.1.0"]),
        ("<=1.9.3", ["1.9.3", "0.1.0"], ["1.9.4"]),
        (">1.2", ["1.3.0"], ["1.2.9", "1.2.0"]),
        ("1.x", ["1.0.0", "1.5.2"], ["2.0.0"]),
        ("1.2.*", ["1.2.0", "1.2.5"], ["1.3.0"]),
        ("*", ["0.0.1", "9.9.9"], []),
        ("=1.2.3", ["1.2.3", "1.2.3+build.5"], ["1.2.4"]),
        ("^1 || ^3", ["1.0.0", "3.4.0"], ["2.0.0"]),
    ],
)
def test_range_membership(expression: str, inside: list[str], outside: list[str]) -> None:
    r = parse_range(expression)
    for version in inside:
        assert r.contains(version), f"{version} should satisfy {expression}"
    for version in outside:
        assert not r.contains(version), f"{version} should not satisfy {expression}"


def test_precedence_follows_semver() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-rc.1", "1.0.0"]
    parsed = [parse_version(v) for v in ordered]
    assert parsed == sorted(parsed)
    assert str(parse_version("1.2.3-rc.1+b")) == "1.2.3-rc.1"


@pytest.mark.parametrize("bad", ["", "latest", "^", "1.2.3.4", ">>1", "^a.b", "||"])
def test_bad_ranges_are_refused(bad: str) -> None:
    with pytest.raises(RangeError):
        parse_range(bad)


@pytest.mark.parametrize("bad", ["1.2", "01.2.3", "latest", "1.2.3-"])
def test_bad_versions_are_refused(bad: str) -> None:
    with pytest.raises(RangeError):
        parse_version(bad)
    assert not parse_range("*").contains(bad)
