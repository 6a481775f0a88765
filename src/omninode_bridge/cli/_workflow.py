"""``omninode-bridge workflow``: submit a definition (JSON or YAML), follow it, list, cancel, retry runs.

Only typer is imported at module level so ``--help`` is immediate; httpx, yaml and rich load when a command runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["workflow_app"]

workflow_app = typer.Typer(help="Submit and follow workflows (the workflow module's API).", no_args_is_help=True)
_ENDED = ("completed", "failed", "cancelled")
Url = Annotated[str | None, typer.Option(envvar="OMNINODE_URL", help="API base URL.")]
Key = Annotated[str | None, typer.Option(envvar="OMNINODE_API_KEY", help="API key (scope workflow).")]


def _target(url: str | None, api_key: str | None) -> tuple[str, str]:
    from omninode_bridge.cli._api import api_target

    return api_target(url, api_key)


def _call(method: str, url: str, key: str, path: str, **kwargs: Any) -> dict[str, Any]:
    from omninode_bridge.cli._api import api_call

    return dict(api_call(method, url, key, path, **kwargs)[1])


def _load(file: Path, inputs: list[str]) -> dict[str, Any]:
    import yaml

    text = file.read_text()
    document = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(document, dict):
        raise typer.BadParameter("the file holds no workflow object", param_hint="FILE")
    merged = dict(document.get("inputs") or {})
    for item in inputs:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} is not k=v", param_hint="--input")
        try:
            merged[key] = json.loads(value)  # numbers, booleans, JSON objects
        except ValueError:
            merged[key] = value
    document["inputs"] = merged
    return document


def _table(run: dict[str, Any]) -> Any:
    from rich.table import Table

    colours = {"completed": "green", "failed": "red", "running": "yellow", "cancelled": "magenta", "skipped": "dim"}
    outcome = f" ({run['outcome']})" if run.get("outcome") else ""
    table = Table(title=f"{run['name']} {run['run_id']}: {run['status']}{outcome}")
    for column in ("task", "phase", "kind", "status", "attempts", "error"):
        table.add_column(column)
    for task in run["tasks"]:
        colour = colours.get(task["status"], "white")
        table.add_row(task["task_id"], task["phase"], task["kind"], f"[{colour}]{task['status']}[/{colour}]",
                      str(task["attempts"]), (task.get("error") or "")[:80])  # fmt: skip
    return table


def _follow(url: str, key: str, run_id: str, *, watch: bool) -> dict[str, Any]:
    """Follow the run until it ends: its event stream, or polling when the stream is unavailable."""
    import time

    import httpx
    from rich.live import Live

    from omninode_bridge.cli import err_console

    run = _call("GET", url, key, f"/workflows/{run_id}")
    with Live(_table(run), console=err_console(), transient=False) if watch else _nothing() as live:
        try:
            for current in _stream(url, key, run_id, run):
                run = current
                if live is not None:
                    live.update(_table(run))
        except (httpx.HTTPError, ValueError):
            pass  # an older server or a dropped connection: poll
        while run["status"] not in _ENDED:
            time.sleep(0.25)
            run = _call("GET", url, key, f"/workflows/{run_id}")
            if live is not None:
                live.update(_table(run))
    return _call("GET", url, key, f"/workflows/{run_id}")


def _stream(url: str, key: str, run_id: str, run: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The run after each message of ``GET /workflows/{id}/events`` (snapshot, task, run, end)."""
    import httpx

    headers = {"X-API-Key": key, "Accept": "text/event-stream"}
    # The server sends a keep-alive comment every 15 s: a read timeout well past it means the stream is dead.
    timeout = httpx.Timeout(10, read=45)
    with httpx.stream("GET", f"{url}/workflows/{run_id}/events", headers=headers, timeout=timeout) as response:
        if response.status_code != 200:
            return
        event, data = "message", ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].removeprefix(" ")
            elif not line and data:
                run = _apply(run, event, json.loads(data))
                yield run
                if event == "end":
                    return
                event, data = "message", ""


def _apply(run: dict[str, Any], event: str, data: dict[str, Any]) -> dict[str, Any]:
    """The run once one stream message is applied to it."""
    if event == "snapshot":
        return data
    if event == "task":
        ident = (data["task_id"], data["phase"])
        tasks = [data if (t["task_id"], t["phase"]) == ident else t for t in run["tasks"]]
        if all((t["task_id"], t["phase"]) != ident for t in run["tasks"]):
            tasks.append(data)
        return {**run, "tasks": tasks}
    if event in ("run", "end"):
        return {**run, **data}
    return run


class _nothing:  # a null context manager that yields None (no live table)
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def _print_result(run: dict[str, Any]) -> None:
    outputs = {t["task_id"]: t["output"] for t in run["tasks"] if t["phase"] == "forward"}
    typer.echo(json.dumps({"run_id": run["run_id"], "status": run["status"], "outcome": run.get("outcome"),
                           "error": run.get("error"), "outputs": outputs}, indent=2))  # fmt: skip


@workflow_app.command("submit")
def submit(
    file: Annotated[Path, typer.Argument(help="A workflow definition (JSON or YAML).", exists=True, dir_okay=False)],
    inputs: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="k=v, overriding the file's inputs.")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the run to end and print its results.")] = False,
    watch: Annotated[bool, typer.Option(help="Show a live table of the tasks while the run goes on.")] = False,
    url: Url = None,
    api_key: Key = None,
) -> None:
    """Submit a workflow. With --wait or --watch, exit 0 only when the run completed."""
    base, key = _target(url, api_key)
    accepted = _call("POST", base, key, "/workflows", json=_load(file, inputs or []))
    run_id = str(accepted["run_id"])
    if not (wait or watch):
        typer.echo(json.dumps(accepted))
        return
    run = _follow(base, key, run_id, watch=watch)
    _print_result(run)
    raise typer.Exit(0 if run["status"] == "completed" else 1)


@workflow_app.command("status")
def status(run_id: Annotated[str, typer.Argument(help="The run id.")], url: Url = None, api_key: Key = None) -> None:
    """A run's state and tasks."""
    base, key = _target(url, api_key)
    from omninode_bridge.cli import err_console

    run = _call("GET", base, key, f"/workflows/{run_id}")
    err_console().print(_table(run))
    _print_result(run)


@workflow_app.command("list")
def list_runs(
    state: Annotated[str | None, typer.Option("--status", help="Only runs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    url: Url = None,
    api_key: Key = None,
) -> None:
    """The newest runs."""
    base, key = _target(url, api_key)
    params: dict[str, Any] = {"limit": limit, **({"status": state} if state else {})}
    page = _call("GET", base, key, "/workflows", params=params)
    for item in page["items"]:
        typer.echo(f"{item['run_id']}  {item['status']:<12} {item.get('outcome') or '':<20} {item['name']}")


@workflow_app.command("cancel")
def cancel(
    run_id: Annotated[str, typer.Argument(help="The run id.")],
    compensate: Annotated[bool, typer.Option(help="Run the compensations of completed tasks.")] = True,
    url: Url = None,
    api_key: Key = None,
) -> None:
    """Cancel a running run."""
    base, key = _target(url, api_key)
    typer.echo(json.dumps(_call("POST", base, key, f"/workflows/{run_id}/cancel",
                                params={"compensate": str(compensate).lower()})))  # fmt: skip


@workflow_app.command("retry")
def retry(run_id: Annotated[str, typer.Argument(help="The run id.")], url: Url = None, api_key: Key = None) -> None:
    """Resume a failed or cancelled run from its failed tasks."""
    base, key = _target(url, api_key)
    typer.echo(json.dumps(_call("POST", base, key, f"/workflows/{run_id}/retry")))
