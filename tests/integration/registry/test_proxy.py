"""The tool-capture proxy against the real stack and real upstream servers on loopback: forwarding with the
capture recorded as one paired pre/post tool call, refusals, and failover when an instance dies."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from omninode_bridge.embedded import EmbeddedStack, free_port
from tests.integration.conftest import sql_rows, wait_until

H = {"X-API-Key": "onb_test_admin_key_0123456789abcdef"}


class EchoServer:
    """A real HTTP server on loopback answering every method with what it received, as JSON."""

    def __init__(self, name: str) -> None:
        self.port = free_port()
        owner = name

        class Handler(BaseHTTPRequestHandler):  # HTTP/1.0: one connection per request, so stop() is a kill
            def _answer(self) -> None:
                if self.path == "/stream":  # no Content-Length: the body ends when the connection closes
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    for line in (b"one\n", b"two\n", b"three\n"):
                        self.wfile.write(line)
                        self.wfile.flush()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                document = {"server": owner, "method": self.command, "path": self.path, "body": body,
                            "headers": {k.lower(): v for k, v in self.headers.items()}}  # fmt: skip
                out = json.dumps(document).encode()
                self.send_response(201 if self.command == "POST" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Set-Cookie", "session=s3cr3t-cookie-value")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = _answer  # http.server's names

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop answering and close the listening socket (connections are refused from now on)."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def echo_servers() -> Iterator[tuple[EchoServer, EchoServer]]:
    """Two running :class:`EchoServer` instances."""
    servers = (EchoServer("a"), EchoServer("b"))
    yield servers
    for server in servers:
        if server.server.socket.fileno() != -1:
            server.stop()


async def _register(client: AsyncTestClient[Litestar], service: str, port: int, **fields: Any) -> None:
    body = {"node_id": f"{service}-{port}", "name": service, "node_type": "service", "version": "1.0.0",
            "address": "127.0.0.1", "port": port, **fields}  # fmt: skip
    response = await client.post("/registry/nodes", json=body, headers=H)
    assert response.status_code == 201, response.text


async def test_proxy_forwards_and_records_one_paired_tool_call(
    client: AsyncTestClient[Litestar], echo_servers: tuple[EchoServer, EchoServer], stack: EmbeddedStack
) -> None:
    service = f"echo-{uuid.uuid4().hex[:8]}"
    await _register(client, service, echo_servers[0].port)
    headers = {**H, "Authorization": "Bearer onb_secret", "X-Trace": "t-1", "Content-Type": "application/json"}
    response = await client.post(f"/proxy/{service}/items/42?full=1", content=b'{"password": "hunter2", "n": 1}',
                                 headers=headers)  # fmt: skip
    assert response.status_code == 201, response.text
    echoed = response.json()
    assert echoed["method"] == "POST"
    assert echoed["path"] == "/items/42?full=1"
    assert echoed["body"] == '{"password": "hunter2", "n": 1}'
    assert echoed["headers"]["x-trace"] == "t-1"
    # Our own credentials never reach the service; the correlation id does.
    assert "x-api-key" not in echoed["headers"]
    assert "authorization" not in echoed["headers"]
    assert echoed["headers"]["x-correlation-id"]
    assert response.headers["set-cookie"] == "session=s3cr3t-cookie-value"

    tool = f"{service}:POST /items/42"

    async def paired() -> bool:
        rows = await sql_rows(stack.urls["database_url"],
                              "SELECT duration_ms, outcome FROM hooks_tool_calls WHERE source = 'registry.proxy' "
                              "AND tool_name = :t AND duration_ms IS NOT NULL", t=tool)  # fmt: skip
        return len(rows) == 1

    # The pairing is the hooks processor's (a Kafka consumer of this fresh app, whose group joins first): on a
    # loaded 2-core runner that took more than 15 s once.
    await wait_until(paired, timeout=45, message="the proxied call was not recorded as a paired tool call")
    events = await sql_rows(
        stack.urls["database_url"],
        "SELECT event_type, data FROM hook_events WHERE source = 'registry.proxy' AND tool_name = :t ORDER BY id",
        t=tool,
    )
    assert [e[0] for e in events] == ["pre_tool_use", "post_tool_use"]
    pre, post = events[0][1], events[1][1]
    assert pre["method"] == "POST"
    assert pre["query"] == "full=1"
    assert pre["body_bytes"] == 31
    assert pre["body"]["password"] == "[REDACTED]"
    assert pre["body"]["n"] == 1
    assert "x-api-key" not in pre["headers"]
    assert post["status"] == 201
    assert post["duration_ms"] > 0
    assert post["success"] is True
    assert post["headers"]["set-cookie"] == "[REDACTED]"
    assert post["body"]["server"] == "a"
    streamed = await client.get(f"/proxy/{service}/stream", headers=H)
    assert streamed.status_code == 200
    assert streamed.text == "one\ntwo\nthree\n"


async def test_proxy_refuses_what_is_not_registered(
    client: AsyncTestClient[Litestar], echo_servers: tuple[EchoServer, EchoServer]
) -> None:
    unknown = await client.get(f"/proxy/nope-{uuid.uuid4().hex[:8]}/x", headers=H)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    # No address in the request is ever used: the path only chooses what comes after the registered base.
    service = f"echo-{uuid.uuid4().hex[:8]}"
    await _register(client, service, echo_servers[0].port)
    other = echo_servers[1].port
    sneaky = await client.get(f"/proxy/{service}/http://127.0.0.1:{other}/x", headers=H)
    assert sneaky.status_code == 200
    assert sneaky.json()["server"] == "a"
    assert (await client.get(f"/proxy/127.0.0.1:{other}/x", headers=H)).status_code in (404, 422)
    # A registered service whose only instance is critical: 503.
    down = f"down-{uuid.uuid4().hex[:8]}"
    await _register(client, down, other, check={"kind": "ttl", "ttl": 60, "status": "critical"})
    assert (await client.get(f"/proxy/{down}/x", headers=H)).status_code == 503
    assert (await client.get(f"/proxy/{service}/x")).status_code == 401


async def test_proxy_fails_over_when_an_instance_dies(
    client: AsyncTestClient[Litestar], echo_servers: tuple[EchoServer, EchoServer]
) -> None:
    service = f"pair-{uuid.uuid4().hex[:8]}"
    first, second = echo_servers
    await _register(client, service, first.port)
    await _register(client, service, second.port)
    seen = {(await client.get(f"/proxy/{service}/n", headers=H)).json()["server"] for _ in range(4)}
    assert seen == {"a", "b"}  # round-robin
    first.stop()
    for _ in range(6):
        response = await client.get(f"/proxy/{service}/n", headers=H)
        assert response.status_code == 200, response.text
        assert response.json()["server"] == "b"
    second.stop()
    gone = await client.get(f"/proxy/{service}/n", headers=H)
    assert gone.status_code == 502, gone.text
