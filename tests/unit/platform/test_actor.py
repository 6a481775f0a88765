"""The audit actor of a request: one form for every module."""

from __future__ import annotations

import uuid
from typing import Any

from litestar.connection import ASGIConnection

from omninode_bridge.platform import Actor, Principal


def _connection(**scope: Any) -> ASGIConnection[Any, Any, Any, Any]:
    base: dict[str, Any] = {"type": "http", "method": "POST", "path": "/hooks/sources", "headers": []}
    return ASGIConnection({**base, **scope})  # type: ignore[arg-type]  # a partial ASGI scope is enough here


def test_actor_of_an_authenticated_request() -> None:
    key_id = uuid.uuid4()
    principal = Principal(key_id=key_id, name="k", scopes=frozenset({"admin"}), namespaces=None)
    actor = Actor.from_request(
        _connection(
            user=principal,
            client=("10.0.0.9", 5000),
            state={"client_ip": "203.0.113.7", "correlation_id": "corr-1"},
        )
    )
    assert actor == Actor(
        key_id=key_id, client_ip="203.0.113.7", method="POST", path="/hooks/sources", correlation_id="corr-1"
    )
    assert actor.audit_fields() == {
        "key_id": key_id,
        "client_ip": "203.0.113.7",
        "method": "POST",
        "path": "/hooks/sources",
        "correlation_id": "corr-1",
    }


def test_actor_without_key_falls_back_to_the_peer_and_caps_the_path() -> None:
    actor = Actor.from_request(_connection(client=("10.0.0.9", 5000), path="/x" * 2000))
    assert actor.key_id is None
    assert actor.client_ip == "10.0.0.9"
    assert actor.path is not None
    assert len(actor.path) == 2048
    assert actor.correlation_id is None
