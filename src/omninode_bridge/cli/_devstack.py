"""Finding the stack of a running ``omninode-bridge dev`` (its service URLs, API URL and dev key)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunningDev", "find_running_dev", "local_url"]


@dataclass(frozen=True, slots=True)
class RunningDev:
    """A ``dev`` stack that is running now."""

    state_dir: Path
    services: dict[str, str]
    api_url: str | None
    api_key: str | None


def local_url(host: str, port: int) -> str:
    """The URL a local client uses for an API listening on ``host``:``port`` (any-address -> loopback)."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def find_running_dev(state_dir: str | Path) -> RunningDev | None:
    """The running ``dev`` stack of ``state_dir``, else the one recorded for this user, else None.

    ``state_dir`` is ``OMNINODE_STATE_DIR`` (default ``.omninode`` in the working directory); the per-user
    record (``$XDG_STATE_HOME/omninode-bridge/current``) lets the CLI find the stack from any directory.
    """
    from omninode_bridge.embedded import EmbeddedStack, recorded_state_dir

    candidates = [Path(state_dir).resolve()]
    recorded = recorded_state_dir()
    if recorded is not None and recorded not in candidates:
        candidates.append(recorded)
    for candidate in candidates:
        info = EmbeddedStack.running_urls(candidate)
        if info is None:
            continue
        api_url = info.pop("api_url", None)
        return RunningDev(candidate, info, api_url, EmbeddedStack.stored_dev_key(candidate))
    return None
