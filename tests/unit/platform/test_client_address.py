"""The client address behind trusted proxies (the rate limiter's IP bucket) and its setting."""

from __future__ import annotations

from typing import Any

import pytest

from omninode_bridge.platform.client_address import ClientAddress
from omninode_bridge.settings import SettingsError, load_settings


def _scope(peer: str, *forwarded: str) -> dict[str, Any]:
    return {"client": (peer, 40000), "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded]}


def test_d10_client_address_takes_the_rightmost_untrusted_hop() -> None:
    resolve = ClientAddress("10.0.0.0/8, 192.0.2.1")
    # A client may put anything first; the proxies append what they saw, so the rightmost untrusted wins.
    assert resolve(_scope("10.0.0.5", "1.1.1.1, 198.51.100.7, 192.0.2.1")) == "198.51.100.7"
    assert resolve(_scope("10.0.0.5", "1.1.1.1", "198.51.100.7")) == "198.51.100.7"  # several headers
    assert resolve(_scope("198.51.100.9", "1.1.1.1")) == "198.51.100.9"  # untrusted peer: header ignored
    assert resolve(_scope("10.0.0.5", "10.0.0.6, 10.0.0.7")) == "10.0.0.6"  # all trusted: the farthest
    assert resolve(_scope("10.0.0.5", "not-an-ip, 10.0.0.7")) == "10.0.0.7"  # garbage ends the walk
    assert resolve(_scope("10.0.0.5")) == "10.0.0.5"
    assert resolve(_scope("10.0.0.5", "2001:db8::1")) == "2001:db8::1"
    assert ClientAddress("")(_scope("10.0.0.5", "1.1.1.1")) == "10.0.0.5"


def test_d10_trusted_proxies_setting_is_validated() -> None:
    settings = load_settings({"OMNINODE_TRUSTED_PROXIES": "10.0.0.0/8, ::1"}, env_file=None)
    assert settings.security.trusted_proxies == "10.0.0.0/8, ::1"
    with pytest.raises(SettingsError, match="OMNINODE_TRUSTED_PROXIES"):
        load_settings({"OMNINODE_TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"}, env_file=None)
