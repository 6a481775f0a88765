"""What the CLI commands that talk to a running app share: where it is, which key, and one API call."""

from __future__ import annotations

from typing import Any

import typer

__all__ = ["api_call", "api_target"]


def api_target(url: str | None, api_key: str | None) -> tuple[str, str]:
    """The API base URL and key: the options given, else the running ``make dev`` stack's, else the settings'.

    Raises:
        typer.Exit: No key anywhere (exit code 2, with a hint).
    """
    if url and api_key:  # loading the settings imports every module (seconds): not needed then
        return url, api_key
    from omninode_bridge.cli import _settings, err_console
    from omninode_bridge.cli._devstack import find_running_dev, local_url

    settings = _settings()
    running = find_running_dev(settings.server.state_dir)
    base = url or (running.api_url if running else None) or local_url(settings.server.host, settings.server.port)
    key = api_key or (running.api_key if running else None)
    if not key:
        err_console().print(
            "[red]error:[/red] no API key: pass --api-key, set OMNINODE_API_KEY, or start `make dev` "
            "(its key is found from any directory)."
        )
        raise typer.Exit(2)
    return base, key


def api_call(method: str, url: str, key: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """Status and JSON answer of one API call.

    Raises:
        typer.Exit: The app is unreachable (exit code 2), or answered a problem, printed with its fields (1).
    """
    import httpx

    from omninode_bridge.cli import err_console

    try:
        response = httpx.request(method, f"{url}{path}", headers={"X-API-Key": key}, timeout=60, **kwargs)
    except httpx.HTTPError as exc:
        err_console().print(f"[red]error:[/red] {type(exc).__name__} calling {url}")
        raise typer.Exit(2) from exc
    if response.status_code >= 400:
        try:
            problem = response.json()
            detail = problem.get("detail", response.text)
            errors = [f"  {e.get('field')}: {e.get('message')}" for e in problem.get("errors") or []]
        except ValueError:
            detail, errors = response.text, []
        err_console().print(f"[red]error {response.status_code}:[/red] {detail}", highlight=False)
        for line in errors:
            err_console().print(line, highlight=False)
        raise typer.Exit(1)
    return response.status_code, (response.json() if response.content else None)
