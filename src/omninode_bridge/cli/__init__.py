"""The ``omninode-bridge`` command line."""

from __future__ import annotations

import functools
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from omninode_bridge.cli._devstack import find_running_dev, local_url
from omninode_bridge.cli._serve import run_workers, worker_count

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from rich.console import Console

    from omninode_bridge.platform import ApiKeyService
    from omninode_bridge.settings import Settings

# Imports stay inside the commands: `--help` and the first output of every command must not wait for
# the web framework, the database drivers or the app's modules (seconds of imports).

__all__ = ["main"]

app = typer.Typer(
    name="omninode-bridge",
    help="OmniNode Bridge: event, stamping and workflow hub.",
    no_args_is_help=True,
    add_completion=False,
)
keys_app = typer.Typer(help="Manage API keys directly in the database.", no_args_is_help=True)
app.add_typer(keys_app, name="api-keys")


@functools.cache
def err_console() -> Console:
    """rich's stderr Console, created on first use (importing rich costs a tenth of a second)."""
    from rich.console import Console

    return Console(stderr=True)


def _settings() -> Settings:
    from omninode_bridge.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        err_console().print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _with_running_dev_stack(settings: Settings) -> Settings:
    """Fill unset service URLs from a running ``dev`` stack (its state directory or the per-user record)."""
    running = find_running_dev(settings.server.state_dir)
    if running is None:
        return settings
    urls = running.services
    return settings.with_services(
        database_url=settings.database.url or urls.get("database_url"),
        redis_url=settings.redis.url or urls.get("redis_url"),
        kafka=settings.kafka.bootstrap_servers or urls.get("kafka"),
    )


def _require(settings: Settings, *names: str) -> None:
    missing = [n for n in settings.missing_services() if n in names]
    if missing:
        err_console().print(
            f"[red]error:[/red] {', '.join(missing)} not set. Set it (or run `omninode-bridge dev`, which "
            "starts an embedded stack)."
        )
        raise typer.Exit(2)


@app.command()
def dev(
    ephemeral: Annotated[bool, typer.Option(help="Keep data in a temporary directory, deleted on exit.")] = False,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where the embedded servers keep data (default OMNINODE_STATE_DIR).")
    ] = None,
) -> None:
    """Start the embedded PostgreSQL, Redis and Kafka, migrate, and serve the API.

    Services whose URL is configured (OMNINODE_DATABASE_URL, OMNINODE_REDIS_URL,
    OMNINODE_KAFKA_BOOTSTRAP_SERVERS) are used instead of the embedded ones. Ctrl-C stops everything.
    """
    import shutil
    import tempfile

    from omninode_bridge.embedded import EmbeddedStack, StackError
    from omninode_bridge.migrations import upgrade

    settings = _settings()
    directory = (
        Path(tempfile.mkdtemp(prefix="omninode-")) if ephemeral else (state_dir or Path(settings.server.state_dir))
    )
    stack = EmbeddedStack(
        directory,
        postgres=not settings.database.url,
        redis=not settings.redis.url,
        kafka=not settings.kafka.bootstrap_servers,
    )
    base = local_url(settings.server.host, settings.server.port)
    try:
        err_console().print(f"Starting the embedded stack in [bold]{stack.state_dir}[/bold] ...")
        try:
            stack.start(api_url=base)
        except StackError as exc:
            err_console().print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
        urls = stack.urls
        settings = settings.with_services(
            database_url=urls.get("database_url"), redis_url=urls.get("redis_url"), kafka=urls.get("kafka")
        )
        upgrade(settings.database.url or "")
        dev_key = stack.dev_api_key
        seeds = ",".join(filter(None, [settings.security.api_keys, f"development:{dev_key}:admin"]))
        err_console().print(dev_banner(base, dev_key, stack.credentials_path), highlight=False)
        workers = worker_count(settings.server.workers)
        err_console().print(f"Serving with {workers} worker process(es) (OMNINODE_WORKERS).")
        run_workers(
            settings.server.host,
            settings.server.port,
            workers,
            {
                "OMNINODE_DATABASE_URL": settings.database.url or "",
                "OMNINODE_REDIS_URL": settings.redis.url or "",
                "OMNINODE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers or "",
                "OMNINODE_API_KEYS": seeds,
            },
        )
    finally:
        stack.stop()
        if ephemeral:
            shutil.rmtree(directory, ignore_errors=True)
        err_console().print("Stopped.")


def dev_banner(base: str, dev_key: str, credentials: Path) -> str:
    """What ``dev`` prints once the stack is up: the URLs and the dev key's prefix, never the whole key.

    Logs are kept and shipped; the key stays in ``credentials`` (mode 0600), where the CLI reads it.
    """
    return (
        f"\n[bold green]OmniNode Bridge[/bold green] on {base}\n"
        f"  API docs  {base}/schema\n  Health    {base}/health\n  Metrics   {base}/metrics\n"
        f"  Dev key   [bold]{dev_key[:12]}...[/bold]  (scope admin, X-API-Key header; the full key is "
        f'"dev_api_key" in {credentials}, mode 0600)\n'
        "  The CLI (stamp, api-keys, migrate) finds this stack and its key by itself.\n"
    )


@app.command()
def serve() -> None:
    """Serve the API against configured services only (no embedded stack), in OMNINODE_WORKERS processes."""
    settings = _settings()
    _require(settings, "OMNINODE_DATABASE_URL", "OMNINODE_REDIS_URL", "OMNINODE_KAFKA_BOOTSTRAP_SERVERS")
    run_workers(settings.server.host, settings.server.port, worker_count(settings.server.workers), {})


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply database migrations (alembic upgrade)."""
    from omninode_bridge.migrations import upgrade

    settings = _with_running_dev_stack(_settings())
    _require(settings, "OMNINODE_DATABASE_URL")
    upgrade(settings.database.url or "", revision)
    err_console().print(f"Database migrated to {revision}.")


@app.command("settings")
def show_settings() -> None:
    """List every setting with its environment variable, default and meaning."""
    from rich.console import Console
    from rich.table import Table

    from omninode_bridge.settings import describe_settings

    table = Table("variable", "default", "meaning")
    for env_name, description, default in describe_settings():
        shown = "" if default is None or "SECRET" in env_name or "API_KEYS" in env_name else str(default)
        table.add_row(env_name, shown, description)
    Console().print(table)


_T = TypeVar("_T")


def _run_with_keys(coro_factory: Callable[[ApiKeyService], Awaitable[_T]]) -> _T:
    import asyncio

    from omninode_bridge.core.db import Database

    settings = _with_running_dev_stack(_settings())
    _require(settings, "OMNINODE_DATABASE_URL")

    async def runner() -> _T:
        from omninode_bridge.platform import ApiKeyService

        database = Database(settings.database)
        try:
            async with database.unit_of_work() as uow:
                return await coro_factory(ApiKeyService(uow))
        finally:
            await database.dispose()

    return asyncio.run(runner())


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key.")],
    scope: Annotated[list[str], typer.Option(help="Scope to grant (repeatable): admin or a module name.")],
    namespace: Annotated[list[str] | None, typer.Option(help="Restrict to this namespace (repeatable).")] = None,
) -> None:
    """Create a key and print it once."""
    from omninode_bridge.platform.schemas import ApiKeyCreate

    data = ApiKeyCreate(name=name, scopes=scope, namespaces=namespace or None)
    created = _run_with_keys(lambda svc: svc.create(data, actor=None))
    err_console().print(f"Created key {created.id} ({created.name}); it will not be shown again:")
    typer.echo(created.key)


@keys_app.command("list")
def keys_list(include_revoked: Annotated[bool, typer.Option(help="Show revoked keys too.")] = False) -> None:
    """List keys (never the keys themselves)."""
    from rich.console import Console
    from rich.table import Table

    rows = _run_with_keys(lambda svc: svc.list(include_revoked=include_revoked))
    table = Table("id", "name", "prefix", "scopes", "namespaces", "created", "active")
    for row in rows:
        table.add_row(
            str(row.id), row.name, row.prefix, ",".join(row.scopes), ",".join(row.namespaces or []) or "*",
            row.created_at.isoformat(timespec="seconds"), "yes" if row.active else "no",
        )  # fmt: skip
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[uuid.UUID, typer.Argument(help="Id of the key to revoke.")]) -> None:
    """Revoke a key (running processes drop it within OMNINODE_AUTH_CACHE_SECONDS)."""
    revoked = _run_with_keys(lambda svc: svc.revoke(key_id, actor=None))
    if revoked is None:
        err_console().print(f"[red]error:[/red] no key with id {key_id}")
        raise typer.Exit(1)
    err_console().print(f"Revoked {key_id}.")


def _register_stamp() -> None:
    from omninode_bridge.cli._stamp import stamp_command

    app.command("stamp")(stamp_command)


_register_stamp()


def _register_metrics() -> None:
    from omninode_bridge.cli._metrics import execute_command, models_app

    app.add_typer(models_app, name="models")
    app.command("execute")(execute_command)


_register_metrics()


def _register_workflow() -> None:
    from omninode_bridge.cli._workflow import workflow_app

    app.add_typer(workflow_app, name="workflow")


_register_workflow()


def _register_registry() -> None:
    from omninode_bridge.cli._registry import registry_app

    app.add_typer(registry_app, name="registry")


_register_registry()


def main() -> None:
    """Entry point of the ``omninode-bridge`` script."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app(prog_name="omninode-bridge")


if __name__ == "__main__":
    main()
    sys.exit(0)
