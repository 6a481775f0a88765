"""Static checks of the Dockerfile and compose.yaml against the code (no Docker needed).

They catch drift: a renamed setting or CLI command, a service the app no longer waits for, or an
image configuration the settings loader would refuse at start-up.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from omninode_bridge.cli import app as cli_app
from omninode_bridge.settings import describe_settings, load_settings
from tests.support import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
COMPOSE = REPO_ROOT / "compose.yaml"
PROGRAM = "omninode-bridge"

#: Values standing in for the ``${VAR:?message}`` variables the operator must export.
SAMPLE_SECRETS = {
    "OMNINODE_API_KEYS": "admin:" + "k" * 32 + ":admin",
    "OMNINODE_STAMP_SECRET": "s" * 40,
}
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?P<modifier>:?[-?+][^}]*)?\}")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage, the one that becomes the image."""
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def exec_form(args: str) -> list[str]:
    """Parse a JSON exec-form argument list such as ``["omninode-bridge", "serve"]``."""
    parsed = json.loads(args)
    assert isinstance(parsed, list), f"expected exec form, got {args!r}"
    return parsed


def image_env() -> dict[str, str]:
    """Variables set by ``ENV`` in the final stage."""
    env: dict[str, str] = {}
    for keyword, args in final_stage():
        if keyword == "ENV":
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def image_cmd() -> list[str]:
    """The image's default command (the last ``CMD``)."""
    cmds = [args for keyword, args in final_stage() if keyword == "CMD"]
    assert cmds, "the runtime stage has no CMD"
    return exec_form(cmds[-1])


def compose_services() -> dict[str, dict[str, Any]]:
    """The ``services`` mapping of compose.yaml (YAML anchors resolved)."""
    return yaml.safe_load(COMPOSE.read_text())["services"]


def service_env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whether written as a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def interpolate(value: str) -> str:
    """Resolve compose ``${VAR...}`` references with :data:`SAMPLE_SECRETS`."""

    def sample(match: re.Match[str]) -> str:
        name = match["name"]
        assert name in SAMPLE_SECRETS, f"compose.yaml uses ${{{name}}}; add a sample value to this test"
        return SAMPLE_SECRETS[name]

    return _INTERPOLATION.sub(sample, value)


def service_command(service: dict[str, Any]) -> list[str]:
    """The command a service runs: its own, else the image's CMD."""
    command = service.get("command")
    if command is None:
        return image_cmd()
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


OUR_SERVICES = sorted(name for name, service in compose_services().items() if "build" in service)


# --- Dockerfile ----------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage() -> None:
    """A builder stage keeps uv and the build caches out of the runtime image."""
    stages = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert len(stages) >= 2, stages


def test_dockerfile_runs_as_non_root() -> None:
    """The runtime stage switches to an unprivileged user."""
    users = [args for keyword, args in final_stage() if keyword == "USER"]
    assert users, "the runtime stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_dockerfile_healthcheck_probes_liveness() -> None:
    """The HEALTHCHECK calls /health/live on the port the server listens on."""
    checks = [args for keyword, args in final_stage() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1, checks
    assert "/health/live" in checks[0]
    assert f"127.0.0.1:{image_env()['OMNINODE_PORT']}/" in checks[0]


def test_dockerfile_serves_on_all_interfaces() -> None:
    """The server binds 0.0.0.0 (else it is unreachable from outside) on the exposed port."""
    env = image_env()
    assert env["OMNINODE_HOST"] == "0.0.0.0"
    exposed = [args for keyword, args in final_stage() if keyword == "EXPOSE"]
    assert env["OMNINODE_PORT"] in " ".join(exposed).split()


def test_dockerfile_cmd_serves() -> None:
    """The default command is ``omninode-bridge serve``."""
    assert image_cmd() == [PROGRAM, "serve"]


def test_dockerfile_copies_existing_paths() -> None:
    """Every file copied from the build context exists and is not excluded by .dockerignore."""
    ignored = {
        line.strip().rstrip("/")
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for keyword, args in dockerfile_instructions():
        if keyword != "COPY":
            continue
        if "--from=" in args:
            continue
        parts = [p for p in args.split() if not p.startswith("--")]
        for source in parts[:-1]:
            assert (REPO_ROOT / source).exists(), f"COPY {source}: no such path in the repository"
            assert source.rstrip("/") not in ignored, f"COPY {source}: excluded by .dockerignore"


# --- compose.yaml --------------------------------------------------------------------------------


def test_compose_has_the_backing_services() -> None:
    """PostgreSQL 16, Redpanda, Redis 7 and the app."""
    services = compose_services()
    assert {"postgres", "redpanda", "redis", "app"} <= services.keys()
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "redpanda" in services["redpanda"]["image"]
    assert services["redis"]["image"].startswith("redis:7")


def test_compose_app_waits_for_healthy_services() -> None:
    """The app starts after its backing services are healthy and the migration has finished."""
    depends_on = compose_services()["app"]["depends_on"]
    for name in ("postgres", "redis", "redpanda"):
        assert depends_on[name]["condition"] == "service_healthy", name
        assert "healthcheck" in compose_services()[name], f"{name} has no healthcheck to wait for"
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"


def test_compose_migrate_runs_migrations() -> None:
    """The one-shot ``migrate`` service applies the Alembic migrations."""
    assert service_command(compose_services()["migrate"]) == [PROGRAM, "migrate"]


def test_compose_secrets_are_required_not_hardcoded() -> None:
    """Secrets come from the operator's environment; compose refuses to start without them."""
    env = service_env(compose_services()["app"])
    for name in ("OMNINODE_API_KEYS", "OMNINODE_STAMP_SECRET"):
        assert re.fullmatch(rf"\$\{{{name}:\?.+\}}", env[name]), env[name]


@pytest.mark.parametrize("name", ["app", "migrate"])
def test_compose_environment_names_are_real_settings(name: str) -> None:
    """Every ``OMNINODE_*`` variable given to our image is one the settings loader reads."""
    known = {env_name for env_name, _, _ in describe_settings()}
    used = {var for var in service_env(compose_services()[name]) if var.startswith("OMNINODE_")}
    assert used, f"{name} sets no OMNINODE_* variable"
    assert used <= known, f"unknown settings in {name}: {sorted(used - known)}"


@pytest.mark.parametrize("name", OUR_SERVICES)
def test_compose_configuration_loads(name: str) -> None:
    """The image's ENV plus the service's environment pass validation, production checks included."""
    environ = image_env() | {k: interpolate(v) for k, v in service_env(compose_services()[name]).items()}
    settings = load_settings(environ, env_file=None)
    required_by = {
        "serve": {"OMNINODE_DATABASE_URL", "OMNINODE_REDIS_URL", "OMNINODE_KAFKA_BOOTSTRAP_SERVERS"},
        "migrate": {"OMNINODE_DATABASE_URL"},
    }
    subcommand = service_command(compose_services()[name])[1]
    missing = required_by[subcommand] & set(settings.missing_services())
    assert not missing, f"{name} ({subcommand}) lacks {sorted(missing)}"


def test_compose_app_points_at_compose_services() -> None:
    """The app's service URLs name compose services it depends on, at their container ports."""
    services = compose_services()
    env = service_env(services["app"])
    targets = {
        "OMNINODE_DATABASE_URL": ("postgres", 5432),
        "OMNINODE_REDIS_URL": ("redis", 6379),
        "OMNINODE_KAFKA_BOOTSTRAP_SERVERS": ("redpanda", 9092),
    }
    for var, (host, port) in targets.items():
        value = env[var] if "://" in env[var] else f"kafka://{env[var]}"
        url = urlsplit(value)
        assert (url.hostname, url.port) == (host, port), var
        assert host in services["app"]["depends_on"], var


@pytest.mark.parametrize("name", OUR_SERVICES)
def test_compose_commands_are_real_cli_commands(name: str) -> None:
    """Each command run from our image is an ``omninode-bridge`` subcommand that exists."""
    command = service_command(compose_services()[name])
    assert command[0] == PROGRAM, command
    assert len(command) > 1, f"{name} runs {PROGRAM} without a subcommand"
    result = CliRunner().invoke(cli_app, [*command[1:], "--help"])
    assert result.exit_code == 0, f"{command}: {result.output}"
