"""The command line where no server is involved: configuration refusals, summary wording, the dev key file."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from omninode_bridge.cli import app, dev_banner
from omninode_bridge.cli._stamp import summary_line
from omninode_bridge.cli._stamp_run import FileResult
from omninode_bridge.embedded import EmbeddedStack

runner = CliRunner()


def test_serve_names_the_missing_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("OMNINODE_DATABASE_URL", "OMNINODE_REDIS_URL", "OMNINODE_KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMNINODE_REDIS_URL", "redis://127.0.0.1:1/0")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "OMNINODE_DATABASE_URL" in result.output
    assert "OMNINODE_KAFKA_BOOTSTRAP_SERVERS" in result.output
    assert "OMNINODE_REDIS_URL" not in result.output


def test_production_with_default_secret_refuses_to_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMNINODE_ENV", "production")
    monkeypatch.delenv("OMNINODE_STAMP_SECRET", raising=False)
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "OMNINODE_STAMP_SECRET" in result.output


def test_d16_summary_wording() -> None:
    def results(*statuses: str) -> list[FileResult]:
        return [FileResult(f"f{i}", 1, status) for i, status in enumerate(statuses)]

    assert summary_line(results(*["verified"] * 89, "missing"), verify=True) == "Verified 89 of 90 files; 1 missing"
    assert summary_line(results("created", "existing"), verify=False) == "Stamped 2 of 2 files"
    assert summary_line(results("verified"), verify=True) == "Verified 1 of 1 file"
    assert summary_line(results("created", "failed", "failed"), verify=False) == "Stamped 1 of 3 files; 2 failed"


def test_d17_dev_log_shows_a_key_prefix_and_where_the_key_is_kept(tmp_path: Path) -> None:
    stack = EmbeddedStack(tmp_path / "state", postgres=False, redis=False, kafka=False)
    key = stack.dev_api_key
    assert stack.credentials_path.stat().st_mode & 0o777 == 0o600
    stack.credentials_path.chmod(0o644)  # loosened by hand: tightened again on the next read
    assert EmbeddedStack(tmp_path / "state", postgres=False, redis=False, kafka=False).dev_api_key == key
    assert stack.credentials_path.stat().st_mode & 0o777 == 0o600

    banner = dev_banner("http://127.0.0.1:8000", key, stack.credentials_path)
    assert key not in banner
    assert key[:12] in banner
    assert str(stack.credentials_path) in banner
    assert EmbeddedStack.stored_dev_key(stack.state_dir) == key  # where the CLI reads it


def test_execute_result_lines_name_model_latency_tokens_cost_quality() -> None:
    from omninode_bridge.cli._metrics import result_lines

    lines = result_lines({
        "model": "m1", "latency_ms": 12.345, "ttft_ms": 3.2, "tokens": {"input": 4, "output": 9, "estimated": True},
        "cost_usd": 0.0000123, "quality": {"score": 0.75, "checks": [{"name": "json", "passed": False}]},
        "attempts": [{"model": "m0", "outcome": "timeout"}, {"model": "m1", "outcome": "success"}],
        "execution_id": "e1",
    })  # fmt: skip
    assert lines == [
        "model     m1",
        "latency   12.3 ms, first token 3.2 ms",
        "tokens    4 in, 9 out (estimated)",
        "cost      $0.000012",
        "quality   0.75 json:FAILED",
        "attempts  m0 timeout, m1 success",
        "execution e1",
    ]
