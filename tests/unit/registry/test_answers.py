"""Replayed catalog answers without servers: what is kept, for which version, and what always runs the handler."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from omninode_bridge.modules.registry.controllers import ReplayAnswers
from omninode_bridge.modules.registry.services import AnswerCache, ChangeFeed
from omninode_bridge.modules.registry.services._changes import _names

HEADERS = [(b"content-type", b"application/json"), (b"x-consul-index", b"7")]


class Handler:
    """An ASGI app standing for the handler: answers ``status`` with a body naming how often it ran."""

    def __init__(self) -> None:
        self.calls = 0
        self.status = 200
        self.chunks = 1

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": self.status, "headers": list(HEADERS)})
        for i in range(self.chunks):
            more = i < self.chunks - 1
            await send({"type": "http.response.body", "body": f"call {self.calls}".encode(), "more_body": more})


async def _get(app: ReplayAnswers, query: bytes = b"name=a", method: str = "GET") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)
        if message["type"] == "http.response.start":
            message["headers"].append((b"x-outer", b"1"))  # as the app's middleware does on the way out

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": method, "path": "/registry/nodes", "query_string": query}
    await app(scope, receive, send)  # type: ignore[arg-type]
    return sent


def _setup() -> tuple[ChangeFeed, Handler, ReplayAnswers]:
    changes = ChangeFeed(Redis())  # never connects: only the versions are used
    cache = AnswerCache(changes)
    handler = Handler()
    return changes, handler, ReplayAnswers(handler, lambda: cache)  # type: ignore[arg-type]


async def test_a_repeated_read_replays_the_first_answer_until_its_service_changes() -> None:
    changes, handler, app = _setup()
    first = await _get(app)
    second = await _get(app)
    assert handler.calls == 1
    assert second == first  # status, headers (the outer ones added afresh, not twice) and body
    assert second[0]["headers"] == [*HEADERS, (b"x-outer", b"1")]
    assert (await _get(app, b"name=b"))[1]["body"] == b"call 2"  # another query string is another answer
    await changes._bump(["b"])  # a change of another service: the answer about "a" holds
    assert (await _get(app))[1]["body"] == b"call 1"
    await changes._bump(["a"])
    assert (await _get(app))[1]["body"] == b"call 3"
    assert (await _get(app))[1]["body"] == b"call 3"
    assert handler.calls == 3


async def test_blocking_failed_streamed_and_non_get_reads_always_run_the_handler() -> None:
    _, handler, app = _setup()
    for query in (b"name=a&index=5", b"name=a&ind%65x=5", b"%69ndex=5"):
        await _get(app, query)
        await _get(app, query)
    assert handler.calls == 6
    for query in (b"name=index", b"version=%5E1.2", b"a=1;index=5"):  # "index" a value, not a parameter: kept
        await _get(app, query)
        await _get(app, query)
    assert handler.calls == 9
    await _get(app, method="PUT")
    await _get(app, method="PUT")
    assert handler.calls == 11
    handler.status = 400
    await _get(app, b"name=bad")
    await _get(app, b"name=bad")
    assert handler.calls == 13
    handler.status, handler.chunks = 200, 2
    await _get(app, b"name=streamed")
    await _get(app, b"name=streamed")
    assert handler.calls == 15


async def test_an_answer_read_before_a_change_is_not_kept() -> None:
    changes, handler, app = _setup()

    async def change_meanwhile(scope: Any, receive: Any, send: Any) -> None:
        await changes._bump(None)  # a change committed while the handler read
        await Handler.__call__(handler, scope, receive, send)

    app.app = change_meanwhile
    await _get(app)
    app.app = handler
    await _get(app)
    assert handler.calls == 2
    await _get(app)
    assert handler.calls == 2


class SlowHandler(Handler):
    """A handler that waits for ``release`` before answering (a read in flight)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.release.wait()
        await super().__call__(scope, receive, send)


async def test_concurrent_misses_share_one_handler_run_and_an_error_is_not_shared() -> None:
    changes = ChangeFeed(Redis())
    cache = AnswerCache(changes)
    handler = SlowHandler()
    app = ReplayAnswers(handler, lambda: cache)  # type: ignore[arg-type]
    requests = [asyncio.ensure_future(_get(app)) for _ in range(8)]
    await asyncio.sleep(0)
    handler.release.set()
    answers = await asyncio.gather(*requests)
    assert handler.calls == 1  # the first ran the handler; the seven others replayed its answer
    assert all(a[1]["body"] == b"call 1" for a in answers)
    # An error answer is not shared: every waiter runs the handler itself.
    await changes._bump(None)
    handler.status, handler.release = 500, asyncio.Event()
    requests = [asyncio.ensure_future(_get(app)) for _ in range(3)]
    await asyncio.sleep(0)
    handler.release.set()
    answers = await asyncio.gather(*requests)
    assert handler.calls == 4
    assert [a[0]["status"] for a in answers] == [500, 500, 500]


async def test_versions_follow_the_services_a_change_names() -> None:
    changes = ChangeFeed(Redis())
    await changes._bump(["a", "b"])
    a, b = changes.version("a"), changes.version("b")
    await changes._bump(["b"])
    assert changes.version("a") == a
    assert changes.version("b") > b
    assert changes.version(None) == changes.generation  # a read of the whole catalog: any change
    await changes._bump(None)  # a change of services not known (a purge, a lost notification): every one
    assert changes.version("a") == changes.version("never-seen") == changes.generation


def test_a_notification_names_its_services_or_counts_for_all() -> None:
    assert _names(b"12 svc-a svc-b") == ["svc-a", "svc-b"]
    assert _names(b"12") is None  # an index alone (a purge): every service
    assert _names("not a notification") is None
