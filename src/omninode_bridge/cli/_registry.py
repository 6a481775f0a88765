"""``omninode-bridge registry``: list, show, register and deregister nodes, and search the tool index.

Only typer is imported at module level so ``--help`` is immediate; httpx, yaml and rich load when a command runs.
The API is found as for ``workflow``: ``--url``/``OMNINODE_URL`` and ``--api-key``/``OMNINODE_API_KEY``, else the
running ``make dev`` stack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["registry_app"]

registry_app = typer.Typer(help="Nodes, their health and the tool index (the registry module's API).",
                           no_args_is_help=True)  # fmt: skip
Url = Annotated[str | None, typer.Option(envvar="OMNINODE_URL", help="API base URL.")]
Key = Annotated[str | None, typer.Option(envvar="OMNINODE_API_KEY", help="API key (scope registry).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]
_COLOURS = {"passing": "green", "warning": "yellow", "critical": "red"}


def _target(url: str | None, api_key: str | None) -> tuple[str, str]:
    from omninode_bridge.cli._api import api_target

    return api_target(url, api_key)


def _call(method: str, url: str, key: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    from omninode_bridge.cli._api import api_call

    return api_call(method, url, key, path, **kwargs)


def _print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


def _status(status: str) -> str:
    colour = _COLOURS.get(status, "white")
    return f"[{colour}]{status}[/{colour}]"


def _where(node: dict[str, Any]) -> str:
    if node.get("url"):
        return str(node["url"])
    port = f":{node['port']}" if node.get("port") else ""
    return f"{node.get('address') or ''}{port}"


@registry_app.command("list")
def list_nodes(
    name: Annotated[str | None, typer.Option(help="Only this service name.")] = None,
    node_type: Annotated[str | None, typer.Option("--type", help="orchestrator, reducer, effect, ...")] = None,
    capability: Annotated[str | None, typer.Option(help="Only nodes providing this capability.")] = None,
    version: Annotated[str | None, typer.Option(help="A semver range (^1.2, ~1.2.3, >=1 <2) of --capability.")] = None,
    status: Annotated[str | None, typer.Option(help="passing, warning or critical.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
    as_json: AsJson = False,
    url: Url = None,
    api_key: Key = None,
) -> None:
    """Registered nodes matching the filters, with their health."""
    base, key = _target(url, api_key)
    filters = {"name": name, "node_type": node_type, "capability": capability, "version": version, "status": status}
    params: dict[str, Any] = {"limit": limit, **{k: v for k, v in filters.items() if v is not None}}
    _, page = _call("GET", base, key, "/registry/nodes", params=params)
    if as_json:
        typer.echo(json.dumps(page["items"], indent=2))
        return
    rows = [[n["node_id"], n["name"], n["node_type"], n["version"], _status(n["status"]), _where(n),
             ", ".join(f"{c['name']}@{c['version']}" for c in n["capabilities"])] for n in page["items"]]  # fmt: skip
    _print_table(f"{len(rows)} node(s)", ["node", "name", "type", "version", "status", "address", "capabilities"],
                 rows)  # fmt: skip


@registry_app.command("show")
def show(node_id: Annotated[str, typer.Argument(help="The node id.")], url: Url = None, api_key: Key = None) -> None:
    """One node as JSON: its registration, check, status and output."""
    base, key = _target(url, api_key)
    from urllib.parse import quote

    _, node = _call("GET", base, key, f"/registry/nodes/{quote(node_id, safe='')}")
    typer.echo(json.dumps(node, indent=2))


@registry_app.command("register")
def register(
    file: Annotated[
        Path, typer.Argument(help="A node (JSON or YAML, the POST /registry/nodes body).", exists=True, dir_okay=False)
    ],
    url: Url = None,
    api_key: Key = None,
) -> None:
    """Register or update a node from a file (idempotent by node_id)."""
    import yaml

    text = file.read_text()
    document = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(document, dict):
        raise typer.BadParameter("the file holds no node object", param_hint="FILE")
    base, key = _target(url, api_key)
    code, node = _call("POST", base, key, "/registry/nodes", json=document)
    from omninode_bridge.cli import err_console

    err_console().print(f"{'registered' if code == 201 else 'unchanged'}: {node['node_id']} ({node['status']})")
    typer.echo(json.dumps(node, indent=2))


@registry_app.command("deregister")
def deregister(
    node_id: Annotated[str, typer.Argument(help="The node id.")], url: Url = None, api_key: Key = None
) -> None:
    """Remove a node from discovery."""
    base, key = _target(url, api_key)
    from urllib.parse import quote

    _call("DELETE", base, key, f"/registry/nodes/{quote(node_id, safe='')}")
    typer.echo(f"deregistered {node_id}")


@registry_app.command("tools")
def tools(
    search: Annotated[str, typer.Argument(help="Words of a tool's name or description.")],
    status: Annotated[str, typer.Option(help="Providers' status: passing, warning, critical or any.")] = "passing",
    node_type: Annotated[str | None, typer.Option("--type", help="Only tools of this node type.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    as_json: AsJson = False,
    url: Url = None,
    api_key: Key = None,
) -> None:
    """Search the tool index across the catalog (best match first)."""
    base, key = _target(url, api_key)
    params: dict[str, Any] = {"q": search, "status": status, "limit": limit,
                              **({"node_type": node_type} if node_type else {})}  # fmt: skip
    _, page = _call("GET", base, key, "/registry/tools", params=params)
    if as_json:
        typer.echo(json.dumps(page["items"], indent=2))
        return
    rows = [[t["name"], t["provider"], t["node_id"], _status(t["status"]), _where(t), (t["description"] or "")[:60]]
            for t in page["items"]]  # fmt: skip
    _print_table(f"{len(rows)} tool(s) for {search!r}", ["tool", "provider", "node", "status", "address",
                                                         "description"], rows)  # fmt: skip
