"""Typed settings read from ``OMNINODE_*`` environment variables and an optional ``.env`` file.

Every group is a msgspec Struct whose fields map to one environment variable each: the group's
``env_prefix`` plus the upper-cased field name, unless the field declares its own name in
``Meta(extra={"env": ...})``. Real environment variables win over ``.env``. The field
descriptions double as the reference documentation (``omninode-bridge settings`` prints them).

The core groups live in :mod:`omninode_bridge.core.settings`, each module's group in its own package
(``modules/<m>/settings.py``); :class:`Settings` composes them, and ``build_modules`` hands each module its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
from dotenv import dotenv_values

from omninode_bridge.core.settings import (
    DatabaseSettings,
    KafkaSettings,
    ObservabilitySettings,
    RedisSettings,
    SecuritySettings,
    ServerSettings,
    trusted_networks,
)
from omninode_bridge.modules.hooks.settings import HooksSettings, compile_redaction_pattern
from omninode_bridge.modules.metrics.settings import MetricsSettings
from omninode_bridge.modules.registry.settings import RegistrySettings
from omninode_bridge.modules.stamping.settings import StampingSettings
from omninode_bridge.modules.workflow.settings import WorkflowSettings

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
    "StampingSettings",
    "compile_redaction_pattern",
    "describe_settings",
    "load_settings",
    "trusted_networks",
]

#: Secrets that ship in the source tree; refused when ``OMNINODE_ENV=production``.
DEFAULT_SECRETS = frozenset({"dev-stamp-secret-change-me"})


class SettingsError(ValueError):
    """Raised when the configuration is invalid; the message names the offending variable."""


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
    registry: RegistrySettings = msgspec.field(default_factory=RegistrySettings)
    workflow: WorkflowSettings = msgspec.field(default_factory=WorkflowSettings)

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


#: The groups of :class:`Settings`, in the order ``omninode-bridge settings`` lists them.
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
    "registry": RegistrySettings,
    "workflow": WorkflowSettings,
}


def _field_env_names(group: type[msgspec.Struct]) -> dict[str, tuple[str, str]]:
    """Map each field of ``group`` to (environment variable, description)."""
    info = msgspec.inspect.type_info(group)
    assert isinstance(info, msgspec.inspect.StructType)
    names: dict[str, tuple[str, str]] = {}
    for field in info.fields:
        meta = field.type
        env_name = f"{group.env_prefix}{field.name.upper()}"  # type: ignore[attr-defined]  # a ClassVar of every group
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
