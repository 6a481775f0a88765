"""Hooks' pure logic: key-based redaction, tool outcomes and Claude Code event names."""

from __future__ import annotations

from omninode_bridge.modules.hooks import Redactor
from omninode_bridge.modules.hooks.services import claude_code_event_type, tool_outcome
from omninode_bridge.settings import HooksSettings


def test_redactor_matches_secret_keys_at_any_depth_but_not_lookalikes() -> None:
    redactor = Redactor(HooksSettings().redact_key_set())
    data = {
        "api_key": "sk-1",
        "nested": [{"accessToken": "t", "input_tokens": 12, "token_count": 3}],
        "headers": {"Authorization": "Bearer x", "X-Api-Key": "k", "content-type": "json"},
        "db_password": "pw",
        "plain": "fine",
    }
    redacted, changed = redactor.redact(data)
    assert changed
    assert redacted["api_key"] == redacted["db_password"] == "[REDACTED]"
    assert redacted["nested"][0] == {"accessToken": "[REDACTED]", "input_tokens": 12, "token_count": 3}
    assert redacted["headers"] == {"Authorization": "[REDACTED]", "X-Api-Key": "[REDACTED]", "content-type": "json"}
    assert data["api_key"] == "sk-1", "the input must not be modified"
    untouched = {"a": [1, {"b": 2}]}
    assert redactor.redact(untouched) == (untouched, False)
    custom = Redactor(["ssn"])
    assert custom.redact({"ssn": "1", "api_key": "2"})[0] == {"ssn": "[REDACTED]", "api_key": "2"}


def test_tool_outcome_reads_error_markers() -> None:
    assert tool_outcome({"result": "ok"}) == ("success", None)
    assert tool_outcome({"error": "boom"}) == ("error", "boom")
    assert tool_outcome({"success": False})[0] == "error"
    assert tool_outcome({"status": "failed"}) == ("error", "failed")
    assert tool_outcome(None) == ("success", None)


def test_hook_event_names_map_to_event_types() -> None:
    assert claude_code_event_type("PreToolUse") == "pre_tool_use"
    assert claude_code_event_type("PostToolUseFailure") == "post_tool_use"
    assert claude_code_event_type("SubagentStop") == "subagent_stop"
    assert claude_code_event_type("SubagentStart") == "subagent_start"  # a later event: its snake_case name
    assert tool_outcome({"hook_event_name": "PostToolUseFailure", "error": "Exit code 1"}) == ("error", "Exit code 1")
    assert tool_outcome({"hook_event_name": "PostToolUseFailure", "is_interrupt": True}) == ("error", "interrupted")
    assert tool_outcome({"hook_event_name": "PostToolUse", "tool_response": {"stdout": ""}}) == ("success", None)
