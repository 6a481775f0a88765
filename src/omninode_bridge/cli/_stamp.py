"""``omninode-bridge stamp``: stamp files and directory trees through the API, or verify them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from blake3 import blake3
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from omninode_bridge.modules.stamping import without_block

__all__ = ["stamp_command"]

_CHUNK = 1024 * 1024
_HEAD = 64 * 1024


@dataclass(slots=True)
class FileResult:
    """One file's outcome, as written to the manifest."""

    path: str
    size_bytes: int
    status: str  # created, existing, verified, invalid, missing, failed
    stamp_id: str | None = None
    file_hash: str | None = None
    content_type: str | None = None
    detail: str | None = None


@dataclass(slots=True)
class Target:
    path: Path
    relative: str
    size: int = field(default=0)


def collect(paths: list[Path], include_hidden: bool) -> list[Target]:
    """Files named directly, and every file under the directories named (hidden ones skipped unless asked).

    Raises:
        typer.BadParameter: A path does not exist.
    """
    targets: list[Target] = []
    for root in paths:
        if not root.exists():
            raise typer.BadParameter(f"{root} does not exist")
        if root.is_file():
            targets.append(Target(root, root.name, root.stat().st_size))
            continue
        for directory, subdirectories, files in os.walk(root):
            if not include_hidden:
                subdirectories[:] = [d for d in subdirectories if not d.startswith(".")]
            for name in sorted(files):
                if name.startswith(".") and not include_hidden:
                    continue
                path = Path(directory) / name
                if path.is_symlink() or not path.is_file():
                    continue
                relative = path.relative_to(root).as_posix()
                targets.append(Target(path, relative, path.stat().st_size))
    return targets


async def _file_body(path: Path, advance: Any) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := await asyncio.to_thread(handle.read, _CHUNK):
            advance(len(chunk))
            yield chunk


def local_hash(path: Path) -> tuple[str, int]:
    """BLAKE3 of a file without a stamp block at its start, as the service hashes uploads."""
    hasher = blake3(max_threads=blake3.AUTO)
    with path.open("rb") as handle:
        head = without_block(handle.read(_HEAD))
        size = len(head)
        hasher.update(head)
        while chunk := handle.read(_CHUNK):
            size += len(chunk)
            hasher.update(chunk)
    return hasher.hexdigest(), size


async def _stamp_one(http: httpx.AsyncClient, target: Target, namespace: str, write: bool, advance: Any) -> FileResult:
    response = await http.post(
        "/stamp", content=_file_body(target.path, advance),
        params={"namespace": namespace, "file_path": target.relative},
        headers={"content-type": "application/octet-stream", "content-length": str(target.size)},
    )  # fmt: skip
    if response.status_code not in (200, 201):
        return FileResult(target.relative, target.size, "failed", detail=_problem(response))
    body = response.json()
    if write and body.get("stamped_content") is not None:
        target.path.write_text(body["stamped_content"], encoding="utf-8")
    return FileResult(target.relative, body["size_bytes"], "created" if response.status_code == 201 else "existing",
                      body["stamp_id"], body["file_hash"], body["content_type"])  # fmt: skip


async def _verify_one(http: httpx.AsyncClient, target: Target, namespace: str, advance: Any) -> FileResult:
    file_hash, size = await asyncio.to_thread(local_hash, target.path)
    found = await http.get(f"/stamp/{file_hash}", params={"namespace": namespace})
    if found.status_code == 404:
        advance(target.size)
        return FileResult(target.relative, size, "missing", file_hash=file_hash,
                          detail="no stamp for this content in the namespace (changed or never stamped)")  # fmt: skip
    if found.status_code != 200:
        advance(target.size)
        return FileResult(target.relative, size, "failed", file_hash=file_hash, detail=_problem(found))
    stamp = found.json()
    checked = await http.post(
        "/validate", content=_file_body(target.path, advance), params={"stamp_id": stamp["stamp_id"]},
        headers={"content-type": "application/octet-stream"},
    )  # fmt: skip
    if checked.status_code != 200:
        return FileResult(target.relative, size, "failed", stamp["stamp_id"], file_hash, detail=_problem(checked))
    result = checked.json()
    failed = [f"{c['name']}: {c['detail']}" for c in result["checks"] if not c["passed"]]
    return FileResult(target.relative, size, "verified" if result["valid"] else "invalid", stamp["stamp_id"],
                      file_hash, stamp["content_type"], "; ".join(failed) or None)  # fmt: skip


def _problem(response: httpx.Response) -> str:
    try:
        return f"HTTP {response.status_code}: {response.json().get('detail')}"
    except ValueError:
        return f"HTTP {response.status_code}"


async def run_stamp(
    targets: list[Target], *, url: str, api_key: str, namespace: str, verify: bool, write: bool, concurrency: int,
    console: Console,
) -> list[FileResult]:  # fmt: skip
    """Stamp (or verify) every target with ``concurrency`` requests in flight, showing progress."""
    gate = asyncio.Semaphore(concurrency)
    total = sum(t.size for t in targets)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())  # fmt: skip
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url,
        headers={"X-API-Key": api_key},
        limits=limits,
        timeout=httpx.Timeout(30.0, read=900.0, write=900.0),
    ) as http:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("verifying" if verify else "stamping", total=total)

            def advance(amount: int) -> None:
                progress.advance(task, amount)

            async def one(target: Target) -> FileResult:
                async with gate:
                    try:
                        if verify:
                            return await _verify_one(http, target, namespace, advance)
                        return await _stamp_one(http, target, namespace, write, advance)
                    except (httpx.HTTPError, OSError) as exc:
                        return FileResult(target.relative, target.size, "failed", detail=f"{type(exc).__name__}: {exc}")

            return list(await asyncio.gather(*(one(t) for t in targets)))


def stamp_command(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories (walked recursively).")],
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the stamps.")],
    verify: Annotated[bool, typer.Option(help="Re-hash and validate against the stored stamps instead.")] = False,
    url: Annotated[str | None, typer.Option(envvar="OMNINODE_URL", help="API base URL.")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="OMNINODE_API_KEY", help="API key (scope stamping).")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Files in flight at once.")] = 8,
    manifest: Annotated[Path | None, typer.Option(help="Write a JSON manifest of the results here.")] = None,
    write: Annotated[bool, typer.Option(help="Rewrite text files in place with their stamp block.")] = False,
    include_hidden: Annotated[bool, typer.Option(help="Include dot-files and dot-directories.")] = False,
) -> None:
    """Stamp files and directory trees through the API (or --verify them), with a summary and a manifest.

    The URL and key default to OMNINODE_URL / OMNINODE_API_KEY, else to a `dev` stack running from the
    state directory. Exit code 1 if any file failed (or, with --verify, is missing or invalid).
    """
    from omninode_bridge.cli import _settings, console

    settings = _settings()
    url = url or f"http://{settings.server.host}:{settings.server.port}"
    api_key = api_key or _dev_key(Path(settings.server.state_dir))
    if not api_key:
        console.print("[red]error:[/red] no API key: pass --api-key or set OMNINODE_API_KEY.")
        raise typer.Exit(2)
    targets = collect(paths, include_hidden)
    began = time.perf_counter()
    results = asyncio.run(run_stamp(targets, url=url, api_key=api_key, namespace=namespace, verify=verify,
                                    write=write, concurrency=concurrency, console=console))  # fmt: skip
    elapsed = time.perf_counter() - began
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    total_bytes = sum(r.size_bytes for r in results)
    table = Table(title=f"{'Verified' if verify else 'Stamped'} {len(results)} files in {elapsed:.2f}s "
                        f"({total_bytes / max(elapsed, 1e-9) / 1e6:.1f} MB/s)")  # fmt: skip
    table.add_column("status")
    table.add_column("files", justify="right")
    for status, count in sorted(counts.items()):
        table.add_row(status, str(count))
    console.print(table)
    for result in results:
        if result.status in ("failed", "invalid", "missing"):
            console.print(f"[red]{result.status}[/red] {result.path}: {result.detail}")
    if manifest is not None:
        document = {
            "namespace": namespace, "url": url, "mode": "verify" if verify else "stamp",
            "generated_at": dt.datetime.now(dt.UTC).isoformat(), "elapsed_seconds": round(elapsed, 3),
            "summary": counts, "files": [asdict(r) for r in results],
        }  # fmt: skip
        manifest.write_text(json.dumps(document, indent=2) + "\n")
    if any(r.status in ("failed", "invalid", "missing") for r in results):
        raise typer.Exit(1)


def _dev_key(state_dir: Path) -> str | None:
    from omninode_bridge.embedded import EmbeddedStack

    if EmbeddedStack.running_urls(state_dir) is None:
        return None
    return EmbeddedStack(state_dir).dev_api_key
