"""The API key cache: one verification per key at a time, renewed ahead of expiry, revocations honoured."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from omninode_bridge.platform import Principal
from omninode_bridge.platform.security._cache import AuthCache

PRINCIPAL = Principal(key_id=uuid.uuid4(), name="k", scopes=frozenset({"admin"}), namespaces=None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Verifier:
    """Counts verifications; each waits for ``release`` so tests control when the database answers."""

    def __init__(self, answer: Principal | None = PRINCIPAL) -> None:
        self.calls = 0
        self.answer = answer
        self.error: Exception | None = None
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> Principal | None:
        self.calls += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.answer


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_misses_share_one_verification() -> None:
    cache, verify = AuthCache(5.0, clock=Clock()), Verifier()
    verify.release.clear()
    lookups = [asyncio.ensure_future(cache.principal("d", verify)) for _ in range(32)]
    await _settle()
    verify.release.set()
    assert await asyncio.gather(*lookups) == [PRINCIPAL] * 32
    assert verify.calls == 1
    assert await cache.principal("d", verify) == PRINCIPAL
    assert verify.calls == 1


async def test_renewed_in_the_background_before_expiry() -> None:
    clock = Clock()
    cache, verify = AuthCache(4.0, clock=clock), Verifier()
    await cache.principal("d", verify)
    clock.now += 3.5  # past three quarters of the ttl, before expiry
    verify.release.clear()
    assert [await cache.principal("d", verify) for _ in range(10)] == [PRINCIPAL] * 10  # answered at once
    await _settle()
    assert verify.calls == 2  # one renewal, however many lookups
    verify.release.set()
    await _settle()
    clock.now += 3.5  # past the first expiry: the renewal moved it
    assert await cache.principal("d", verify) == PRINCIPAL
    assert verify.calls == 2


async def test_a_revoked_key_is_refused_at_the_latest_on_expiry() -> None:
    clock = Clock()
    cache, verify = AuthCache(4.0, clock=clock), Verifier()
    await cache.principal("d", verify)
    verify.answer = None  # revoked in the database
    clock.now += 3.5
    assert await cache.principal("d", verify) == PRINCIPAL  # still within the ttl
    await _settle()  # the renewal read the revocation
    assert await cache.principal("d", verify) is None


async def test_drop_key_discards_a_verification_already_running() -> None:
    cache, verify = AuthCache(5.0, clock=Clock()), Verifier()
    verify.release.clear()
    lookup = asyncio.ensure_future(cache.principal("d", verify))
    await _settle()
    cache.drop_key(PRINCIPAL.key_id)  # revoked while the read was in flight
    verify.release.set()
    assert await lookup == PRINCIPAL
    verify.answer = None
    assert await cache.principal("d", verify) is None  # nothing was stored: verified again
    assert verify.calls == 2


async def test_a_failed_renewal_keeps_the_entry_until_it_expires() -> None:
    clock = Clock()
    cache, verify = AuthCache(4.0, clock=clock), Verifier()
    await cache.principal("d", verify)
    verify.error = ConnectionError("database down")
    clock.now += 3.5
    assert await cache.principal("d", verify) == PRINCIPAL
    await _settle()
    assert await cache.principal("d", verify) == PRINCIPAL  # renewal failed: still cached, renewed again
    await _settle()
    clock.now += 1.0  # expired, and the database still down: the request sees the error
    with pytest.raises(ConnectionError):
        await cache.principal("d", verify)


async def test_no_caching_with_a_zero_ttl() -> None:
    cache, verify = AuthCache(0, clock=Clock()), Verifier()
    await cache.principal("d", verify)
    await cache.principal("d", verify)
    assert verify.calls == 2
