"""The command line: serve's configuration check, migrate, api-keys, and `dev` as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from typer.testing import CliRunner

from omninode_bridge.cli import app
from omninode_bridge.embedded import EmbeddedStack, free_port
from tests.integration.conftest import poll_client

runner = CliRunner()
#: A W3C trace context as a calling service would send it (the example of the W3C specification).
CALLER_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNINODE_")}
    return {**env, **extra}


def test_api_keys_create_list_revoke(stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMNINODE_DATABASE_URL", stack.urls["database_url"])
    created = runner.invoke(app, ["api-keys", "create", "--name", "cli-key", "--scope", "hooks", "--namespace", "ns1"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("onb_")
    listed = runner.invoke(app, ["api-keys", "list"])
    assert "cli-key" in listed.stdout
    assert key not in listed.stdout
    key_id = next(line.split()[2] for line in created.output.splitlines() if line.startswith("Created key"))
    revoked = runner.invoke(app, ["api-keys", "revoke", key_id])
    assert revoked.exit_code == 0, revoked.output
    assert "cli-key" not in runner.invoke(app, ["api-keys", "list"]).stdout
    assert runner.invoke(app, ["api-keys", "revoke", "00000000-0000-0000-0000-000000000000"]).exit_code == 1


def test_migrate_is_idempotent(stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMNINODE_DATABASE_URL", stack.urls["database_url"])
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _run_dev(state_dir: Path, port: int, **extra: str) -> tuple[subprocess.Popen[bytes], float]:
    # Its own per-user state record, so the test never touches the record of a developer's `make dev`.
    env = _clean_env(
        OMNINODE_PORT=str(port), OMNINODE_LOG_LEVEL="INFO", XDG_STATE_HOME=str(state_dir.parent / "xdg"), **extra
    )
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "omninode_bridge.cli", "dev", "--state-dir", str(state_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=state_dir.parent,
    )
    return process, started


def _wait_healthy(process: subprocess.Popen[bytes], port: int, started: float) -> dict[str, object]:
    # The embedded stack, then one app process per core: on a loaded 2-core machine (the suite's other workers)
    # that took over 60 s; start_serve allows 120 s for the same reason.
    deadline = started + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        try:
            response = poll_client().get(f"http://127.0.0.1:{port}/health")
            body = response.json()
            if body["status"] == "healthy":
                return body
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError("dev did not report healthy within 120 s")


def _stop(process: subprocess.Popen[bytes]) -> str:
    children = _descendants(process.pid)
    assert len(children) >= 3, "expected postgres, redis and the broker as children"
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    # uvicorn re-raises the captured SIGINT after a clean shutdown: 130 is the conventional Ctrl-C exit.
    assert process.returncode in (0, 130), output.decode()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"processes left behind: {[p.pid for p in alive]}"
    return output.decode()


@pytest.mark.slow
def test_dev_serves_healthy_stops_cleanly_and_reuses_data(server_tmp_path: Path) -> None:
    state_dir = server_tmp_path / "state"
    port = free_port()
    process, started = _run_dev(state_dir, port)
    try:
        body = _wait_healthy(process, port, started)
        components = body["components"]
        assert isinstance(components, dict)
        assert {components[c]["status"] for c in ("database", "kafka", "redis")} == {"up"}
        assert components["metrics"]["status"] == "degraded"  # the shipped model catalog is empty
        key = json.loads((state_dir / "credentials.json").read_text())["dev_api_key"]
        created = httpx.post(
            f"http://127.0.0.1:{port}/admin/api-keys",
            json={"name": "survives-restart", "scopes": ["hooks"]},
            headers={"X-API-Key": key, "X-Correlation-ID": "dev-run-1", "traceparent": CALLER_TRACEPARENT},
        )
        assert created.status_code == 201
    finally:
        output = _stop(process)
    assert key not in output  # the banner shows the key's prefix and where the full key is kept
    assert key[:12] in output
    assert str((state_dir / "credentials.json").resolve()) in output.replace("\n", "")
    log_lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    request_line = next(line for line in log_lines if line.get("correlation_id") == "dev-run-1")
    assert request_line["event"] == "request"
    assert request_line["level"] == "info"
    assert request_line["timestamp"].endswith("Z")
    assert request_line["trace_id"] == CALLER_TRACEPARENT.split("-")[1]  # the caller's trace continues

    # A second run on the same state directory keeps the data (one worker is enough to read it: the first run
    # started the default, one per core).
    process, started = _run_dev(state_dir, port, OMNINODE_WORKERS="1")
    try:
        _wait_healthy(process, port, started)
        listed = httpx.get(f"http://127.0.0.1:{port}/admin/api-keys", headers={"X-API-Key": key}).json()
        assert "survives-restart" in {k["name"] for k in listed}
    finally:
        _stop(process)
