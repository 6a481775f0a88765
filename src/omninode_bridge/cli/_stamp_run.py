"""The work of ``omninode-bridge stamp``: walking the paths, hashing locally, and the API calls.

Imported only when the command runs; httpx, blake3 and rich's progress bar load here, and the stamp block
helpers only when a file starts with a block.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import typer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["FileResult", "Target", "collect", "local_hash", "run_stamp"]

_CHUNK = 1024 * 1024
_HEAD = 64 * 1024
#: The opening marker of an O.N.E. stamp block: only heads holding it need the block parser.
_BLOCK_MARKER = b"---BEGIN ONEX STAMP---"


@dataclass(slots=True)
class FileResult:
    """One file's outcome, as written to the manifest."""

    path: str
    size_bytes: int
    status: str  # created, existing, verified, invalid, missing, misplaced, failed
    stamp_id: str | None = None
    file_hash: str | None = None
    content_type: str | None = None
    detail: str | None = None


@dataclass(slots=True)
class Target:
    path: Path
    relative: str
    size: int = field(default=0)


def collect(paths: list[Path], include_hidden: bool, skip: Path | None = None) -> list[Target]:
    """Files named directly, and every file under the directories named (hidden ones skipped unless asked).

    ``skip`` (the manifest being written) is never a target. A file's relative path (its ``file_path`` in
    the stamp) is relative to the directory named, or its bare name when the file itself is named.

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
                if path.is_symlink() or not path.is_file() or (skip is not None and path.resolve() == skip):
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
    from blake3 import blake3

    hasher = blake3(max_threads=blake3.AUTO)
    with path.open("rb") as handle:
        head = handle.read(_HEAD)
        if _BLOCK_MARKER in head:
            from omninode_bridge.modules.stamping import without_block

            head = without_block(head)
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


async def _verify_one(
    http: httpx.AsyncClient, target: Target, namespace: str, copies: dict[str, str], advance: Any
) -> FileResult:
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
    owner = stamp.get("file_path")
    if owner and owner != target.relative and copies.get(target.relative) != file_hash:
        # The content is stamped, but for another file: a copy made after stamping (cp a.py b.py).
        # Identical files stamped together share one stamp; the stamp manifest (``copies``) admits those.
        advance(target.size)
        return FileResult(target.relative, size, "misplaced", stamp["stamp_id"], file_hash, stamp["content_type"],
                          f"this content's stamp belongs to {owner}, not to this file")  # fmt: skip
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
    console: Console, copies: dict[str, str] | None = None,
) -> list[FileResult]:  # fmt: skip
    """Stamp (or verify) every target with ``concurrency`` requests in flight, showing progress.

    ``copies`` maps relative paths to the content hashes they had when stamped (from the stamp manifest).
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

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
                            return await _verify_one(http, target, namespace, copies or {}, advance)
                        return await _stamp_one(http, target, namespace, write, advance)
                    except (httpx.HTTPError, OSError) as exc:
                        return FileResult(target.relative, target.size, "failed", detail=f"{type(exc).__name__}: {exc}")

            return list(await asyncio.gather(*(one(t) for t in targets)))
