"""``python -m omninode_bridge.cli``: the same as the ``omninode-bridge`` command."""

from __future__ import annotations

from omninode_bridge.cli import main

main()
