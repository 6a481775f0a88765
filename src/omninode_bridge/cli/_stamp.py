"""``omninode-bridge stamp``: stamp files and directory trees through the API, or verify them.

Only typer is imported at module level so ``--help`` is immediate; the work is in ``_stamp_run``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from omninode_bridge.cli._stamp_run import FileResult

__all__ = ["MANIFEST_NAME", "default_manifest", "stamp_command", "summary_line"]

#: The manifest's file name; a dot-file, so walking the tree again never stamps it.
MANIFEST_NAME = ".omninode-stamps.json"
_OK = {"stamp": ("created", "existing"), "verify": ("verified",)}
_PROBLEMS = ("failed", "invalid", "missing", "misplaced")


def default_manifest(paths: Sequence[Path]) -> Path:
    """Where ``stamp`` writes its manifest: in the directory stamped, else in the working directory."""
    if len(paths) == 1 and paths[0].is_dir():
        return paths[0] / MANIFEST_NAME
    return Path(MANIFEST_NAME)


def summary_line(results: Sequence[FileResult], *, verify: bool) -> str:
    """``Verified 89 of 90 files; 1 missing``: how many succeeded out of how many, then each problem."""
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    ok = sum(counts.get(status, 0) for status in _OK["verify" if verify else "stamp"])
    line = f"{'Verified' if verify else 'Stamped'} {ok} of {len(results)} file{'' if len(results) == 1 else 's'}"
    problems = [f"{counts[status]} {status}" for status in _PROBLEMS if counts.get(status)]
    return f"{line}; {', '.join(problems)}" if problems else line


def _stamped_copies(manifest: Path, namespace: str) -> dict[str, str]:
    """Paths and content hashes that a stamp run recorded in ``manifest`` for ``namespace`` (empty if none)."""
    try:
        document = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(document, dict) or document.get("namespace") != namespace or document.get("mode") != "stamp":
        return {}
    return {
        entry["path"]: entry["file_hash"]
        for entry in document.get("files", [])
        if isinstance(entry, dict) and entry.get("status") in _OK["stamp"] and entry.get("file_hash")
    }


def stamp_command(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories (walked recursively).")],
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the stamps.")],
    verify: Annotated[bool, typer.Option(help="Re-hash and validate against the stored stamps instead.")] = False,
    url: Annotated[str | None, typer.Option(envvar="OMNINODE_URL", help="API base URL.")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="OMNINODE_API_KEY", help="API key (scope stamping).")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Files in flight at once.")] = 8,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help=f"JSON manifest of the results. Stamping writes one by default: {MANIFEST_NAME} in the directory "
            "stamped (else in the working directory); --verify writes one only when given this option."
        ),
    ] = None,
    no_manifest: Annotated[bool, typer.Option("--no-manifest", help="Write no manifest.")] = False,
    write: Annotated[bool, typer.Option(help="Rewrite text files in place with their stamp block.")] = False,
    include_hidden: Annotated[bool, typer.Option(help="Include dot-files and dot-directories.")] = False,
) -> None:
    """Stamp files and directory trees through the API (or --verify them), with a summary and a manifest.

    The URL and key default to OMNINODE_URL / OMNINODE_API_KEY, else to the running `dev` stack (found
    from any directory). --verify also checks that each file's stamp was made for that file's path
    (relative to the directory named): a copy of a stamped file is reported "misplaced". Exit code 1 if
    any file failed (or, with --verify, is missing, misplaced or invalid).
    """
    import asyncio
    import datetime as dt
    import time
    from dataclasses import asdict

    from omninode_bridge.cli import err_console
    from omninode_bridge.cli._api import api_target
    from omninode_bridge.cli._stamp_run import collect, run_stamp

    console = err_console()
    url, api_key = api_target(url, api_key)
    written = None if no_manifest else manifest or (None if verify else default_manifest(paths))
    targets = collect(paths, include_hidden, skip=written.resolve() if written else None)
    copies = _stamped_copies(default_manifest(paths), namespace) if verify else {}
    began = time.perf_counter()
    results = asyncio.run(run_stamp(targets, url=url, api_key=api_key, namespace=namespace, verify=verify,
                                    write=write, concurrency=concurrency, console=console, copies=copies))  # fmt: skip
    elapsed = time.perf_counter() - began
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    total_bytes = sum(r.size_bytes for r in results)
    for result in results:
        if result.status in _PROBLEMS:
            console.print(f"[red]{result.status}[/red] {result.path}: {result.detail}", highlight=False)
    console.print(
        f"{summary_line(results, verify=verify)} in {elapsed:.2f} s ({total_bytes / max(elapsed, 1e-9) / 1e6:.1f} MB/s)"
        f"  [{', '.join(f'{count} {status}' for status, count in sorted(counts.items()))}]",
        highlight=False,
        markup=False,
    )
    if written is not None:
        document = {
            "namespace": namespace, "url": url, "mode": "verify" if verify else "stamp",
            "generated_at": dt.datetime.now(dt.UTC).isoformat(), "elapsed_seconds": round(elapsed, 3),
            "summary": counts, "files": [asdict(r) for r in results],
        }  # fmt: skip
        written.write_text(json.dumps(document, indent=2) + "\n")
        console.print(f"Manifest: {written}", highlight=False, markup=False)
    if any(r.status in _PROBLEMS for r in results):
        raise typer.Exit(1)
