"""The registry module's settings group (``OMNINODE_REGISTRY_*``)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

__all__ = ["RegistrySettings"]


class RegistrySettings(msgspec.Struct, kw_only=True, frozen=True):
    """Health checking, blocking queries, the self-registration of the bridge and the tool-capture proxy."""

    env_prefix: ClassVar[str] = "OMNINODE_REGISTRY_"

    allow_private_addresses: Annotated[
        bool,
        msgspec.Meta(
            description="HTTP checks and the proxy may reach loopback, private and link-local addresses (off: "
            "only public ones; a check may only ever target the node's own registered address)."
        ),
    ] = False
    checker_tick_seconds: Annotated[
        float,
        msgspec.Meta(gt=0, le=10, description="How often the elected checker looks for expired TTLs and due checks."),
    ] = 0.25
    checker_lease_seconds: Annotated[
        float,
        msgspec.Meta(gt=0, description="The checker lease (Redis) one process holds; another takes over after it."),
    ] = 5.0
    max_wait_seconds: Annotated[
        float, msgspec.Meta(gt=0, le=600, description="Longest a blocking query (?index=&wait=) is held.")
    ] = 300.0
    tombstone_seconds: Annotated[
        float,
        msgspec.Meta(gt=0, description="How long a deregistered node is kept (hidden) so blocking queries see it go."),
    ] = 3600.0
    self_register: Annotated[
        bool,
        msgspec.Meta(description="Register this app (one node per process) with a TTL check and keep it passing."),
    ] = True
    self_ttl_seconds: Annotated[
        float, msgspec.Meta(gt=0, description="The TTL of the app's own registration (heartbeat at a third of it).")
    ] = 15.0
    proxy_prefix: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^(/[a-z0-9_-]{1,32}){1,4}$",
            description="Path prefix of the tool-capture proxy: /<prefix>/<service>/<path...>.",
        ),
    ] = "/proxy"
    proxy_timeout_seconds: Annotated[
        float, msgspec.Meta(gt=0, le=3600, description="Longest wait for an upstream's answer (read/write): then 504.")
    ] = 30.0
    proxy_connect_timeout_seconds: Annotated[
        float, msgspec.Meta(gt=0, le=60, description="Connect timeout per instance; then the next is tried.")
    ] = 2.0
    proxy_max_body_bytes: Annotated[
        int, msgspec.Meta(ge=0, description="Largest request body the proxy forwards (413 beyond).")
    ] = 10 * 1024 * 1024
    proxy_capture: Annotated[
        bool, msgspec.Meta(description="Record each proxied exchange in hooks (off: the proxy only forwards).")
    ] = True
    proxy_capture_body_bytes: Annotated[
        int, msgspec.Meta(ge=0, le=1024 * 1024, description="Bytes of each body kept in a capture.")
    ] = 4096
    proxy_capture_queue: Annotated[
        int,
        msgspec.Meta(gt=0, description="Captures waiting to be written; beyond it they are dropped (and counted)."),
    ] = 10_000
    proxy_max_connections: Annotated[
        int, msgspec.Meta(gt=0, description="Idle upstream connections the proxy keeps open per instance, per process.")
    ] = 512
