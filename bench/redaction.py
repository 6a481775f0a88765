"""Cost of hook redaction on a typical Claude Code ``PostToolUse`` payload (a few KB), per payload.

Compares, on the same payload: decoding its JSON (msgspec, the floor every hook pays anyway), redaction by key
name only, and redaction by key name plus value patterns (the default). Two payloads: a ``Read`` of a source
file (mostly code, no secret: the common case, where nothing is copied) and a ``Bash`` command that exports a
GitHub token (one secret replaced).

Run: ``.venv/bin/python -m bench.redaction [--rounds N]``
"""

from __future__ import annotations

import argparse
import timeit
from functools import partial
from pathlib import Path

import msgspec

from omninode_bridge.modules.hooks.redaction import Redactor
from omninode_bridge.settings import HooksSettings


def _payloads() -> dict[str, bytes]:
    source = Path(__file__).resolve().parents[1] / "src/omninode_bridge/modules/hooks/services/_ingest.py"
    content = source.read_text()[:4000]
    common = {
        "session_id": "4f0c2a59-3f53-4b35-9a7e-2c8e0b6d1a11",
        "transcript_path": "/home/dev/.claude/projects/-home-dev-app/4f0c2a59.jsonl",
        "cwd": "/home/dev/app",
        "permission_mode": "default",
        "hook_event_name": "PostToolUse",
        "tool_use_id": "toolu_01ABCDEFGHJKMNPQRSTUVWXYZ",
    }
    read = {
        **common,
        "tool_name": "Read",
        "tool_input": {"file_path": str(source)},
        "tool_response": {
            "type": "text",
            "file": {"filePath": str(source), "content": content, "numLines": content.count("\n"), "startLine": 1},
        },
    }
    bash = {
        **common,
        "tool_name": "Bash",
        "tool_input": {
            "command": "export GITHUB_TOKEN=ghp_" + "x1Y2z3" * 6 + " && gh pr list --limit 50",
            "description": "List open pull requests",
        },
        "tool_response": {"stdout": "\n".join(f"#{n}\tFix flaky test {n}\tfeature/{n}\tOPEN" for n in range(60)),
                          "stderr": "", "interrupted": False, "isImage": False},
    }  # fmt: skip
    return {name: msgspec.json.encode(p) for name, p in (("read", read), ("bash", bash))}


def main() -> None:
    """Print microseconds per payload for each step."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    rounds = parser.parse_args().rounds
    settings = HooksSettings()
    keys_only = Redactor(settings.redact_key_set())
    full = Redactor.from_settings(settings)
    for name, body in _payloads().items():
        document = msgspec.json.decode(body)
        assert full.redact(document)[1] == (name == "bash")
        steps = {
            "json decode": partial(msgspec.json.decode, body),
            "keys only": partial(keys_only.redact, document),
            "keys + values": partial(full.redact, document),
        }
        # The best of 5 runs: other processes share the machine's cores.
        figures = {step: min(timeit.repeat(call, number=rounds, repeat=5)) for step, call in steps.items()}
        line = ", ".join(f"{step} {seconds / rounds * 1e6:.1f} us" for step, seconds in figures.items())
        print(f"{name} ({len(body)} bytes): {line}")


if __name__ == "__main__":
    main()
