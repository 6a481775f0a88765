"""Settings: environment variables, .env precedence, errors naming the variable, production guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from omninode_bridge.settings import SettingsError, describe_settings, load_settings


def test_defaults_are_safe_for_development() -> None:
    settings = load_settings({}, env_file=None)
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8000
    assert settings.server.max_body_bytes == 10 * 1024 * 1024
    assert settings.database.breaker_failure_threshold == 5
    assert settings.database.breaker_reset_seconds == 60
    assert settings.database.breaker_half_open_calls == 3
    assert settings.missing_services() == [
        "OMNINODE_DATABASE_URL",
        "OMNINODE_REDIS_URL",
        "OMNINODE_KAFKA_BOOTSTRAP_SERVERS",
    ]


def test_environment_values_are_parsed_into_types() -> None:
    settings = load_settings(
        {
            "OMNINODE_PORT": "9001",
            "OMNINODE_DATABASE_POOL_SIZE": "4",
            "OMNINODE_RATE_LIMIT_ENABLED": "false",
            "OMNINODE_KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
        },
        env_file=None,
    )
    assert settings.server.port == 9001
    assert settings.database.pool_size == 4
    assert settings.security.rate_limit_enabled is False
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"


def test_dotenv_applies_but_real_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("OMNINODE_PORT=7000\nOMNINODE_LOG_LEVEL=DEBUG\n")
    settings = load_settings({"OMNINODE_PORT": "7100"}, env_file=env_file)
    assert settings.server.port == 7100
    assert settings.observability.log_level == "DEBUG"


def test_invalid_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="OMNINODE_DATABASE_POOL_SIZE"):
        load_settings({"OMNINODE_DATABASE_POOL_SIZE": "many"}, env_file=None)
    with pytest.raises(SettingsError, match="OMNINODE_PORT"):
        load_settings({"OMNINODE_PORT": "70000"}, env_file=None)


def test_production_refuses_default_or_missing_secrets() -> None:
    with pytest.raises(SettingsError) as excinfo:
        load_settings({"OMNINODE_ENV": "production"}, env_file=None)
    assert "OMNINODE_STAMP_SECRET" in str(excinfo.value)
    assert "OMNINODE_API_KEYS" in str(excinfo.value)
    settings = load_settings(
        {
            "OMNINODE_ENV": "production",
            "OMNINODE_STAMP_SECRET": "x" * 40,
            "OMNINODE_API_KEYS": "ops:onb_0123456789abcdef0123:admin",
        },
        env_file=None,
    )
    assert settings.is_production


def test_every_setting_is_documented() -> None:
    rows = describe_settings()
    names = [name for name, _, _ in rows]
    assert len(names) == len(set(names))
    for name, description, _ in rows:
        assert name.startswith(("OMNINODE_", "OTEL_")), name
        assert description, f"{name} has no description"
    assert {"OMNINODE_DATABASE_URL", "OMNINODE_REDIS_URL", "OMNINODE_KAFKA_BOOTSTRAP_SERVERS"} <= set(names)
    assert {"OMNINODE_API_KEYS", "OMNINODE_HOST", "OMNINODE_PORT", "OMNINODE_STAMP_SECRET"} <= set(names)
