"""Typed settings read from ``OMNINODE_*`` environment variables and an optional ``.env`` file.

Every group is a msgspec Struct whose fields map to one environment variable each: the group's
``env_prefix`` plus the upper-cased field name, unless the field declares its own name in
``Meta(extra={"env": ...})``. Real environment variables win over ``.env``. The field
descriptions double as the reference documentation (``omninode-bridge settings`` prints them).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from dotenv import dotenv_values

__all__ = [
    "DEFAULT_SECRETS",
    "DatabaseSettings",
    "HooksSettings",
    "KafkaSettings",
    "MetricsSettings",
    "ObservabilitySettings",
    "RedisSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "compile_redaction_pattern",
    "describe_settings",
    "load_settings",
    "trusted_networks",
]

Environment = Literal["development", "test", "production"]

#: Secrets that ship in the source tree; refused when ``OMNINODE_ENV=production``.
DEFAULT_SECRETS = frozenset({"dev-stamp-secret-change-me"})


class SettingsError(ValueError):
    """Raised when the configuration is invalid; the message names the offending variable."""


def _env(name: str, description: str) -> msgspec.Meta:
    return msgspec.Meta(description=description, extra={"env": name})


class ServerSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Where and how the HTTP server runs."""

    env_prefix: ClassVar[str] = "OMNINODE_"

    env: Annotated[Environment, _env("OMNINODE_ENV", "development, test or production.")] = "development"
    host: Annotated[str, msgspec.Meta(description="Interface the API listens on.")] = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535, description="TCP port of the API.")] = 8000
    workers: Annotated[int, msgspec.Meta(ge=1, description="Uvicorn worker processes (serve).")] = 1
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
    pool_size: Annotated[int, msgspec.Meta(ge=1, description="Connections kept in the pool.")] = 10
    max_overflow: Annotated[int, msgspec.Meta(ge=0, description="Extra connections under load.")] = 10
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


class SecuritySettings(msgspec.Struct, kw_only=True, frozen=True):
    """API keys, rate limits and signing secrets."""

    env_prefix: ClassVar[str] = "OMNINODE_"

    api_keys: Annotated[
        str,
        _env(
            "OMNINODE_API_KEYS",
            "Keys seeded at start-up, comma-separated 'name:key[:scope+scope[:namespace+namespace]]' or a "
            "bare key (named after its hash). Scopes default to admin.",
        ),
    ] = ""
    stamp_secret: Annotated[
        str,
        _env("OMNINODE_STAMP_SECRET", "Secret of the stamp signatures; refused at its default in production."),
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
        float, _env("OMNINODE_RATE_LIMIT_WINDOW_SECONDS", "Length of the sliding rate-limit window.")
    ] = 60.0
    rate_limit_enabled: Annotated[bool, _env("OMNINODE_RATE_LIMIT_ENABLED", "Turn rate limiting on or off.")] = True
    auth_cache_seconds: Annotated[
        float,
        _env(
            "OMNINODE_AUTH_CACHE_SECONDS",
            "How long a verified key is cached in-process; a revocation reaches other processes within it.",
        ),
    ] = 5.0
    trusted_proxies: Annotated[
        str,
        _env(
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


class StampingSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Stamping, its signing keys, and the services its orchestrator may call."""

    env_prefix: ClassVar[str] = "OMNINODE_STAMP_"

    previous_secrets: Annotated[
        str,
        _env(
            "OMNINODE_STAMP_PREVIOUS_SECRETS",
            "Comma-separated former stamp secrets, still accepted when validating (rotation).",
        ),
    ] = ""
    max_upload_bytes: Annotated[
        int,
        msgspec.Meta(ge=1, description="Largest raw upload that /stamp, /hash and /validate accept (else 413)."),
    ] = 64 * 1024**3
    inline_hash_bytes: Annotated[
        int,
        msgspec.Meta(
            ge=0, description="In-memory inputs up to this size are hashed on the event loop; larger in a thread."
        ),
    ] = 128 * 1024
    hash_threads: Annotated[
        int, msgspec.Meta(ge=0, description="blake3 max_threads for large inputs (0: one per core).")
    ] = 0
    stamped_content_max_bytes: Annotated[
        int,
        msgspec.Meta(ge=0, description="Raw text uploads up to this size come back stamped; larger ones do not."),
    ] = 10 * 1024 * 1024
    onextree_url: Annotated[
        str | None,
        _env("OMNINODE_ONEXTREE_URL", "OnexTree intelligence service; the optional workflow step is skipped if unset."),
    ] = None


#: Keys whose values are replaced before a hook is stored, published or logged (OMNINODE_HOOKS_REDACT_KEYS).
DEFAULT_REDACT_KEYS = (
    "password,passwd,secret,client_secret,token,access_token,refresh_token,id_token,api_key,apikey,"
    "x_api_key,authorization,proxy_authorization,cookie,set_cookie,private_key,secret_key,access_key,"
    "credentials,session_token"
)


def compile_redaction_pattern(regex: str, label: str) -> re.Pattern[str]:
    """Compile an operator-supplied redaction pattern.

    Args:
        regex: The pattern.
        label: How to name it in the error (the setting and its index).

    Raises:
        ValueError: It does not compile, or it matches the empty string (it would redact nothing, everywhere).
    """
    try:
        compiled = re.compile(regex)
    except re.error as exc:
        raise ValueError(f"{label} ({regex!r}) is invalid: {exc}") from None
    if compiled.fullmatch(""):
        raise ValueError(f"{label} ({regex!r}) matches the empty string")
    return compiled


class HooksSettings(msgspec.Struct, kw_only=True, frozen=True):
    """The hooks module: body limit, secret redaction, idempotency, retention and the live stream."""

    env_prefix: ClassVar[str] = "OMNINODE_HOOKS_"

    max_body_bytes: Annotated[
        int, msgspec.Meta(ge=1024, description="Largest body of one hook or webhook, in bytes (else 413).")
    ] = 1024 * 1024
    redact_keys: Annotated[
        str,
        msgspec.Meta(
            description="Comma-separated keys whose values are redacted in hook data at any depth; a key also "
            "matches when it ends in _<key> (camelCase and dashes are normalised: accessToken, X-Api-Key)."
        ),
    ] = DEFAULT_REDACT_KEYS
    redact_values: Annotated[
        bool,
        msgspec.Meta(
            description="Also redact secrets by their shape inside any string of hook data and webhook bodies "
            "(GitHub/GitLab/Slack/AWS/Stripe... tokens, sk- keys, JWTs, Bearer credentials, PEM private keys, "
            "passwords in URLs and password=... assignments), whatever the key; only the secret part is replaced."
        ),
    ] = True
    redact_patterns: Annotated[
        str,
        msgspec.Meta(
            description='More secret shapes, as a JSON array of Python regular expressions (["acme_[0-9a-f]{32}"]); '
            "a pattern's first capture group, if any, is the part replaced, else the whole match."
        ),
    ] = ""
    idempotency_window_seconds: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            description="How long an Idempotency-Key (webhooks: webhook-id or X-GitHub-Delivery, else source + "
            "body hash) identifies a duplicate; hooks are never deduplicated by content (0 turns duplicate "
            "detection off).",
        ),
    ] = 86_400.0
    retention_days: Annotated[
        float, msgspec.Meta(gt=0, description="Hook events, sessions and tool calls older than this are purged.")
    ] = 30.0
    purge_batch_size: Annotated[
        int, msgspec.Meta(ge=1, le=100_000, description="Rows deleted per transaction by the retention purge.")
    ] = 5000
    purge_interval_seconds: Annotated[
        float, msgspec.Meta(gt=0, description="Time between two runs of the background retention purge.")
    ] = 3600.0
    stream_ticket_seconds: Annotated[
        int, msgspec.Meta(ge=5, description="Lifetime of a /hooks/stream ticket (for browsers' EventSource).")
    ] = 60
    live_buffer_events: Annotated[
        int,
        msgspec.Meta(
            ge=100, description="Live-stream entries (one or more hooks each) kept in Redis for viewers that resume."
        ),
    ] = 10_000

    def __post_init__(self) -> None:
        # Refuse bad patterns at start-up (msgspec reports the ValueError as OMNINODE_HOOKS_REDACT_PATTERNS).
        for index, regex in enumerate(self.redact_pattern_list()):
            compile_redaction_pattern(regex, f"OMNINODE_HOOKS_REDACT_PATTERNS[{index}]")

    def redact_key_set(self) -> frozenset[str]:
        """The normalised redaction keys."""
        return frozenset(k.strip().lower().replace("-", "_") for k in self.redact_keys.split(",") if k.strip())

    def redact_pattern_list(self) -> list[str]:
        """The extra redaction patterns (``redact_patterns`` decoded).

        Raises:
            ValueError: It is not a JSON array of strings.
        """
        if not self.redact_patterns.strip():
            return []
        try:
            return msgspec.json.decode(self.redact_patterns, type=list[str])
        except msgspec.DecodeError as exc:
            message = f"OMNINODE_HOOKS_REDACT_PATTERNS is not a JSON array of regular expressions: {exc}"
            raise ValueError(message) from None


class MetricsSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Model catalog, routing, failover, cooldowns, budgets and what is stored of an execution."""

    env_prefix: ClassVar[str] = "OMNINODE_METRICS_"

    models_file: Annotated[
        str | None,
        msgspec.Meta(
            description="The model catalog (YAML); default: contracts/models.yaml of the repository.",
            extra={"env": "OMNINODE_MODELS_FILE"},
        ),
    ] = None
    store_prompts: Annotated[
        bool,
        msgspec.Meta(
            description="Store the messages and the answer of each execution (redacted like hooks); off: only "
            "the measurements."
        ),
    ] = False
    daily_budget_usd: Annotated[
        float,
        msgspec.Meta(ge=0, description="Cost an API key may spend per UTC day on /execute (0: no budget)."),
    ] = 0.0
    max_attempts: Annotated[
        int, msgspec.Meta(ge=1, le=10, description="Models tried per execution (failover) before giving up.")
    ] = 3
    cooldown_failures: Annotated[
        int, msgspec.Meta(ge=1, description="Consecutive failures of a model that start its cooldown.")
    ] = 3
    cooldown_seconds: Annotated[
        float, msgspec.Meta(gt=0, description="How long a failing model is left out of routing.")
    ] = 5.0
    exploration: Annotated[
        Literal["thompson", "none"],
        msgspec.Meta(
            description="thompson: sample each model's statistics from their posterior (explores models with few "
            "samples); none: always the best mean (no exploration)."
        ),
    ] = "thompson"
    latency_alpha: Annotated[
        float, msgspec.Meta(gt=0, le=1, description="Weight of the newest latency in its moving average (EWMA).")
    ] = 0.2
    concurrency_lease_seconds: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            description="A concurrency slot held by a process that died is freed after this long (longer than "
            "any model timeout).",
        ),
    ] = 600.0


class ObservabilitySettings(msgspec.Struct, kw_only=True, frozen=True):
    """Logging, tracing and metrics."""

    env_prefix: ClassVar[str] = "OMNINODE_"

    log_level: Annotated[str, _env("OMNINODE_LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR.")] = "INFO"
    log_json: Annotated[bool, _env("OMNINODE_LOG_JSON", "JSON log lines (else coloured console output).")] = True
    service_name: Annotated[str, _env("OTEL_SERVICE_NAME", "Service name in traces and metrics.")] = "omninode-bridge"
    otlp_endpoint: Annotated[
        str | None,
        _env("OTEL_EXPORTER_OTLP_ENDPOINT", "OTLP/HTTP collector; traces are exported only if set."),
    ] = None


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """All settings of one process, grouped by concern."""

    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    kafka: KafkaSettings = msgspec.field(default_factory=KafkaSettings)
    security: SecuritySettings = msgspec.field(default_factory=SecuritySettings)
    stamping: StampingSettings = msgspec.field(default_factory=StampingSettings)
    observability: ObservabilitySettings = msgspec.field(default_factory=ObservabilitySettings)
    hooks: HooksSettings = msgspec.field(default_factory=HooksSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)

    @property
    def is_production(self) -> bool:
        """True when running with ``OMNINODE_ENV=production``."""
        return self.server.env == "production"

    def with_services(
        self, *, database_url: str | None = None, redis_url: str | None = None, kafka: str | None = None
    ) -> Settings:
        """Return a copy pointing at the given service addresses (used by the embedded stack)."""
        return msgspec.structs.replace(
            self,
            database=msgspec.structs.replace(self.database, url=database_url or self.database.url),
            redis=msgspec.structs.replace(self.redis, url=redis_url or self.redis.url),
            kafka=msgspec.structs.replace(self.kafka, bootstrap_servers=kafka or self.kafka.bootstrap_servers),
        )

    def missing_services(self) -> list[str]:
        """Names of the service URL variables that are unset."""
        missing = []
        if not self.database.url:
            missing.append("OMNINODE_DATABASE_URL")
        if not self.redis.url:
            missing.append("OMNINODE_REDIS_URL")
        if not self.kafka.bootstrap_servers:
            missing.append("OMNINODE_KAFKA_BOOTSTRAP_SERVERS")
        return missing


_GROUPS: dict[str, type[msgspec.Struct]] = {
    "server": ServerSettings,
    "database": DatabaseSettings,
    "redis": RedisSettings,
    "kafka": KafkaSettings,
    "security": SecuritySettings,
    "stamping": StampingSettings,
    "observability": ObservabilitySettings,
    "hooks": HooksSettings,
    "metrics": MetricsSettings,
}


def _field_env_names(group: type[msgspec.Struct]) -> dict[str, tuple[str, str]]:
    """Map each field of ``group`` to (environment variable, description)."""
    info = msgspec.inspect.type_info(group)
    assert isinstance(info, msgspec.inspect.StructType)
    names: dict[str, tuple[str, str]] = {}
    for field in info.fields:
        meta = field.type
        env_name = f"{group.env_prefix}{field.name.upper()}"  # type: ignore[attr-defined]
        description = ""
        if isinstance(meta, msgspec.inspect.Metadata):
            env_name = (meta.extra or {}).get("env", env_name)
            description = (meta.extra_json_schema or {}).get("description", "")
        names[field.name] = (env_name, description)
    return names


def _descriptions(group: type[msgspec.Struct]) -> dict[str, str]:
    hints = msgspec.structs.fields(group)
    out = {}
    for field in hints:
        for meta in getattr(field.type, "__metadata__", ()):
            if isinstance(meta, msgspec.Meta) and meta.description:
                out[field.name] = meta.description
    return out


def describe_settings() -> list[tuple[str, str, Any]]:
    """List every setting as (environment variable, description, default), for docs and the CLI."""
    rows = []
    for group in _GROUPS.values():
        names = _field_env_names(group)
        descriptions = _descriptions(group)
        for field in msgspec.structs.fields(group):
            rows.append((names[field.name][0], descriptions.get(field.name, ""), field.default))
    return rows


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> Settings:
    """Build :class:`Settings` from the environment and an optional ``.env`` file.

    Args:
        environ: Variables to read; defaults to ``os.environ``.
        env_file: A dotenv file whose values apply where the environment has none; skipped if absent.

    Returns:
        The validated settings.

    Raises:
        SettingsError: A value does not parse, or production mode meets a default or missing secret.
    """
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)

    raw: dict[str, dict[str, str]] = {}
    for group_name, group in _GROUPS.items():
        for field_name, (env_name, _) in _field_env_names(group).items():
            if env_name in values and values[env_name] != "":
                raw.setdefault(group_name, {})[field_name] = values[env_name]
    try:
        # strict=False lets msgspec parse "8000" as int and "true"/"1" as bool.
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid configuration: {_explain(exc)}") from exc
    _refuse_default_secrets(settings)
    return settings


def _explain(exc: msgspec.ValidationError) -> str:
    """Rewrite msgspec's ``$.group.field`` path into the environment variable name."""
    message = str(exc)
    for group_name, group in _GROUPS.items():
        for field_name, (env_name, _) in _field_env_names(group).items():
            message = message.replace(f"`$.{group_name}.{field_name}`", env_name)
    return message


def _refuse_default_secrets(settings: Settings) -> None:
    if not settings.is_production:
        return
    problems = []
    if settings.security.stamp_secret in DEFAULT_SECRETS or len(settings.security.stamp_secret) < 32:
        problems.append("OMNINODE_STAMP_SECRET must be set to a random value of at least 32 characters")
    if not settings.security.api_keys:
        problems.append("OMNINODE_API_KEYS must seed at least one key")
    if problems:
        raise SettingsError("refusing to start in production: " + "; ".join(problems))
