"""Settings groups of the core services: server, database, Redis, Kafka, security and observability.

Feature modules declare their own groups next to their code (``modules/<m>/settings.py``); the root
:class:`omninode_bridge.settings.Settings` composes them all. Core never imports a module.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, ClassVar, Literal

import msgspec

__all__ = [
    "DatabaseSettings",
    "KafkaSettings",
    "ObservabilitySettings",
    "RedisSettings",
    "SecuritySettings",
    "ServerSettings",
    "env_var",
    "trusted_networks",
]

Environment = Literal["development", "test", "production"]


def env_var(name: str, description: str) -> msgspec.Meta:
    """Field metadata naming the field's environment variable (instead of the group prefix + field name)."""
    return msgspec.Meta(description=description, extra={"env": name})


class ServerSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Where and how the HTTP server runs."""

    env_prefix: ClassVar[str] = "OMNINODE_"

    env: Annotated[Environment, env_var("OMNINODE_ENV", "development, test or production.")] = "development"
    host: Annotated[str, msgspec.Meta(description="Interface the API listens on.")] = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535, description="TCP port of the API.")] = 8000
    workers: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            description="Worker processes of serve and dev, each a whole app on the shared port; 0 = one per CPU core.",
        ),
    ] = 0
    state_dir: Annotated[str, msgspec.Meta(description="Directory of the embedded stack's data (dev only).")] = (
        ".omninode"
    )
    contracts_dir: Annotated[
        str | None, msgspec.Meta(description="Directory of the YAML contracts (default: the repository's).")
    ] = None
    max_body_bytes: Annotated[
        int, msgspec.Meta(ge=1024, description="Largest request body accepted, in bytes (else 413).")
    ] = 10 * 1024 * 1024


class DatabaseSettings(msgspec.Struct, kw_only=True, frozen=True):
    """PostgreSQL connection, pool and circuit breaker."""

    env_prefix: ClassVar[str] = "OMNINODE_DATABASE_"

    url: Annotated[
        str | None,
        msgspec.Meta(description="SQLAlchemy URL, postgresql+asyncpg://user:pw@host:port/db. Unset: embedded."),
    ] = None
    # Sized to the concurrency one worker serves plus its background work (the relay's two connections,
    # the consumers, the workflow engine, the health checker): connections open lazily, and past
    # ``pool_size`` the pool closes each overflow connection when it comes back, so 32 clients on a pool of
    # 10 + 10 opened (and prepared statements on) a new connection for most requests (py-spy: a tenth of a
    # stamp's CPU), and on 32 + 16 still a few a second (each a SCRAM login and type introspection).
    pool_size: Annotated[int, msgspec.Meta(ge=1, description="Connections kept in the pool (per worker).")] = 40
    max_overflow: Annotated[int, msgspec.Meta(ge=0, description="Extra connections under load.")] = 8
    pool_timeout_seconds: Annotated[
        float, msgspec.Meta(gt=0, description="Wait for a free pooled connection before failing.")
    ] = 5.0
    connect_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, description="Timeout of one connection attempt.")] = (
        2.0
    )
    statement_timeout_ms: Annotated[
        int, msgspec.Meta(ge=0, description="Server-side statement timeout (0 = none).")
    ] = 30_000
    breaker_failure_threshold: Annotated[
        int, msgspec.Meta(ge=1, description="Consecutive connection failures that open the breaker.")
    ] = 5
    breaker_reset_seconds: Annotated[
        float, msgspec.Meta(gt=0, description="How long the breaker stays open before trial calls.")
    ] = 60.0
    breaker_half_open_calls: Annotated[
        int, msgspec.Meta(ge=1, description="Trial calls let through while half-open.")
    ] = 3
    echo: Annotated[bool, msgspec.Meta(description="Log every SQL statement (debugging only).")] = False


class RedisSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Redis: rate-limit counters, caches, idempotency keys."""

    env_prefix: ClassVar[str] = "OMNINODE_REDIS_"

    url: Annotated[str | None, msgspec.Meta(description="redis://host:port/db. Unset: embedded.")] = None
    socket_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, description="Timeout of one Redis command.")] = 1.0


class KafkaSettings(msgspec.Struct, kw_only=True, frozen=True):
    """The Kafka-compatible broker."""

    env_prefix: ClassVar[str] = "OMNINODE_KAFKA_"

    bootstrap_servers: Annotated[
        str | None, msgspec.Meta(description="Comma-separated host:port list. Unset: embedded Tansu.")
    ] = None
    client_id: Annotated[str, msgspec.Meta(description="Kafka client id of this process.")] = "omninode-bridge"
    request_timeout_ms: Annotated[int, msgspec.Meta(ge=1000, description="Timeout of one broker request.")] = 10_000
    session_timeout_ms: Annotated[
        int,
        msgspec.Meta(
            ge=1000,
            le=300_000,
            description="Consumer group session timeout: a consumer silent this long leaves its group. Joins "
            "and leaves take up to half of it on Tansu.",
        ),
    ] = 10_000
    heartbeat_interval_ms: Annotated[
        int, msgspec.Meta(ge=100, le=100_000, description="Consumer heartbeat interval (under a third of the session).")
    ] = 3_000


class SecuritySettings(msgspec.Struct, kw_only=True, frozen=True):
    """API keys, rate limits and signing secrets."""

    env_prefix: ClassVar[str] = "OMNINODE_"

    api_keys: Annotated[
        str,
        env_var(
            "OMNINODE_API_KEYS",
            "Keys seeded at start-up, comma-separated 'name:key[:scope+scope[:namespace+namespace]]' or a "
            "bare key (named after its hash). Scopes default to admin.",
        ),
    ] = ""
    stamp_secret: Annotated[
        str,
        env_var("OMNINODE_STAMP_SECRET", "Secret of the stamp signatures; refused at its default in production."),
    ] = "dev-stamp-secret-change-me"  # noqa: S105 - development default, refused in production
    rate_limit_requests: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            description="Requests allowed per key (or client IP) per window.",
            extra={"env": "OMNINODE_RATE_LIMIT_REQUESTS"},
        ),
    ] = 1200
    rate_limit_webhook_requests: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            description="Unkeyed webhook deliveries allowed per source (POST /hooks/{source}) "
            "per window, whatever their client IP.",
            extra={"env": "OMNINODE_RATE_LIMIT_WEBHOOK_REQUESTS"},
        ),
    ] = 1200
    rate_limit_window_seconds: Annotated[
        float, env_var("OMNINODE_RATE_LIMIT_WINDOW_SECONDS", "Length of the sliding rate-limit window.")
    ] = 60.0
    rate_limit_enabled: Annotated[bool, env_var("OMNINODE_RATE_LIMIT_ENABLED", "Turn rate limiting on or off.")] = True
    rate_limit_lease: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            description="Most requests of one key a process leases from Redis at once (blocks double from 1 "
            "while the key stays busy; for a limit above 64 times this, up to 1/64 of the limit, at most 1,024). "
            "Never more than the limit per window across processes; a busy key may be refused up to one block "
            "early per process. 1: one Redis call per request.",
            extra={"env": "OMNINODE_RATE_LIMIT_LEASE"},
        ),
    ] = 16
    auth_cache_seconds: Annotated[
        float,
        env_var(
            "OMNINODE_AUTH_CACHE_SECONDS",
            "How long a verified key is cached in-process; a revocation reaches other processes within it.",
        ),
    ] = 5.0
    trusted_proxies: Annotated[
        str,
        env_var(
            "OMNINODE_TRUSTED_PROXIES",
            "Comma-separated IPs or CIDRs of reverse proxies whose X-Forwarded-For is believed: from such a "
            "peer the client IP is the rightmost address that is not a trusted proxy. Empty: the TCP peer.",
        ),
    ] = ""

    def __post_init__(self) -> None:
        # Parse now so a bad entry stops start-up with the variable's name instead of failing per request.
        trusted_networks(self.trusted_proxies)


def trusted_networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks of ``OMNINODE_TRUSTED_PROXIES`` (a bare IP is a one-address network).

    Raises:
        ValueError: An entry is neither an IP address nor a CIDR.
    """
    networks = []
    for entry in filter(None, (e.strip() for e in raw.split(","))):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"OMNINODE_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR") from None
    return tuple(networks)


class ObservabilitySettings(msgspec.Struct, kw_only=True, frozen=True):
    """Logging, tracing and metrics."""

    env_prefix: ClassVar[str] = "OMNINODE_"

    log_level: Annotated[str, env_var("OMNINODE_LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR.")] = "INFO"
    log_json: Annotated[bool, env_var("OMNINODE_LOG_JSON", "JSON log lines (else coloured console output).")] = True
    service_name: Annotated[str, env_var("OTEL_SERVICE_NAME", "Service name in traces and metrics.")] = (
        "omninode-bridge"
    )
    otlp_endpoint: Annotated[
        str | None,
        env_var("OTEL_EXPORTER_OTLP_ENDPOINT", "OTLP/HTTP collector; traces are exported only if set."),
    ] = None
