"""The proxy's pieces without servers: which registrations it may call, upstream URLs, header filtering, body
captures and the capture queue."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

import httpx

from omninode_bridge.modules.registry.models import NodeRegistration
from omninode_bridge.modules.registry.services import CaptureWriter, ToolCapture
from omninode_bridge.modules.registry.services._captures import captures_total
from omninode_bridge.modules.registry.services._exchange import HOP_BY_HOP, OWN_AUTH, _Body, _headers_out
from omninode_bridge.modules.registry.services._proxy import admit


def _row(node_id: str, **fields: object) -> NodeRegistration:
    return NodeRegistration(node_id=node_id, name="svc", status="passing", **fields)


async def test_only_registered_public_addresses_are_admitted_unless_private_ones_are_allowed() -> None:
    rows = [
        _row("loop", address="127.0.0.1", port=8080),
        _row("private", url="http://10.1.2.3:9000/base"),
        _row("public", address="93.184.215.14", port=443),
        _row("no-port", address="93.184.215.14"),
        _row("ftp", url="ftp://93.184.215.14/"),
    ]
    instances, refused = await admit(rows, allow_private=False)
    assert [i.node_id for i in instances] == ["public"]
    assert refused == 2  # loopback and private: refused by the address rules; the other two are not callable
    instances, refused = await admit(rows, allow_private=True)
    assert [i.node_id for i in instances] == ["loop", "private", "public"]
    assert refused == 0
    base = instances[1]
    # The request chooses only the path: an absolute URL in it stays a path on the registered host.
    assert base.origin == ("http", "10.1.2.3", 9000)
    assert base.netloc == b"10.1.2.3:9000"
    assert base.target(b"/http://evil.example/x", b"a=1") == b"/base/http://evil.example/x?a=1"


def test_hop_by_hop_and_own_credentials_are_not_forwarded() -> None:
    raw = [(b"Host", b"bridge"), (b"X-API-Key", b"k"), (b"Authorization", b"Bearer k"), (b"X-Consul-Token", b"k"),
           (b"Connection", b"keep-alive, X-Private"), (b"X-Private", b"1"), (b"Transfer-Encoding", b"chunked"),
           (b"Accept", b"*/*"), (b"Cookie", b"a=b")]  # fmt: skip
    assert _headers_out(raw, HOP_BY_HOP | OWN_AUTH) == [(b"accept", b"*/*"), (b"cookie", b"a=b")]


def test_body_captures_are_bounded_and_typed() -> None:
    whole = _Body(limit=64)
    whole.see(b'{"a": ')
    whole.see(b"1}")
    assert whole.captured("application/json") == {"body_bytes": 8, "body_truncated": False, "body": {"a": 1}}
    cut = _Body(limit=4)
    cut.see(b"hello world")
    assert cut.captured("application/json") == {"body_bytes": 11, "body_truncated": True, "body": "hell"}
    binary = _Body(limit=16)
    binary.see(b"\xff\xfe\x00")
    assert binary.captured(None)["body_encoding"] == "binary"
    assert _Body(limit=16).captured(None) == {"body_bytes": 0}


class _Sink:
    def __init__(self) -> None:
        self.batches: list[int] = []

    async def record(self, captures: Sequence[ToolCapture]) -> None:
        self.batches.append(len(captures))


def _capture() -> ToolCapture:
    now = dt.datetime.now(dt.UTC)
    return ToolCapture(service="s", tool="s:GET /", call_id="c", correlation_id="r", started_at=now,
                       finished_at=now, duration_ms=1.5, status=503, instance="n", attempts=2)  # fmt: skip


async def test_capture_queue_batches_drops_when_full_and_drains() -> None:
    sink = _Sink()
    writer = CaptureWriter(sink, capacity=3)
    dropped = captures_total.labels(outcome="dropped")._value.get()
    for _ in range(4):
        writer.put(_capture())
    assert captures_total.labels(outcome="dropped")._value.get() == dropped + 1
    task = asyncio.create_task(writer.run())
    await writer.drain(2.0)
    task.cancel()
    assert sum(sink.batches) == 3
    assert sink.batches[0] == 3
    post = _capture().post_data()
    assert post["success"] is False
    assert post["attempts"] == 2
    assert post["duration_ms"] == 1.5


def test_upstream_url_is_built_from_the_registration() -> None:
    url = httpx.URL(scheme="http", host="127.0.0.1", port=81, raw_path=b"/a%2Fb?x=%20")
    assert str(url) == "http://127.0.0.1:81/a%2Fb?x=%20"
