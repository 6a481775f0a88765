"""The rate limiter's largest leased block: the configured lease, or 1/64 of a high limit, capped."""

from __future__ import annotations

from omninode_bridge.platform.security._limits import lease_ceiling


def test_small_limits_keep_the_configured_lease() -> None:
    assert lease_ceiling(16, 100) == 16
    assert lease_ceiling(16, 1024) == 16


def test_high_limits_lease_a_64th_of_the_limit_up_to_the_cap() -> None:
    assert lease_ceiling(16, 6_400) == 100
    assert lease_ceiling(16, 1_000_000_000) == 1024


def test_a_lease_of_one_stays_exact_whatever_the_limit() -> None:
    assert lease_ceiling(1, 1_000_000) == 1
