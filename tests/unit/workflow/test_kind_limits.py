"""The per-kind caps setting (``OMNINODE_WORKFLOW_KIND_CONCURRENCY``)."""

from __future__ import annotations

import pytest

from omninode_bridge.settings import SettingsError, load_settings


def test_caps_are_read_by_kind() -> None:
    settings = load_settings({"OMNINODE_WORKFLOW_KIND_CONCURRENCY": " ai=4, http=16 "}, env_file=None)
    assert settings.workflow.kind_limits() == {"ai": 4, "http": 16}
    assert load_settings({}, env_file=None).workflow.kind_limits() == {}


@pytest.mark.parametrize("bad", ["ai", "noop=2", "ai=0", "ai=1001", "ai=two", "ai=1,ai=2", "teleport=1"])
def test_a_malformed_cap_is_refused_at_start_up_naming_the_variable(bad: str) -> None:
    with pytest.raises(SettingsError, match="OMNINODE_WORKFLOW_KIND_CONCURRENCY"):
        load_settings({"OMNINODE_WORKFLOW_KIND_CONCURRENCY": bad}, env_file=None)
