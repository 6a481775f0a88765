"""Serve an ASGI app under uvicorn as ``omninode-bridge serve`` does (``cli/_serve.py``): uvloop, httptools, no
access log, no proxy headers. Every server a benchmark compares (the app, the bare Litestar endpoint, the
baselines) is started this way, so each is served the same.

Run: ``python -m bench._uvicorn module:app --port N [--workers N] [--factory]``.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn


def command(target: str, port: int, *, workers: int = 1, factory: bool = False) -> list[str]:
    """The command line that serves ``target`` on 127.0.0.1:``port``."""
    return [sys.executable, "-m", "bench._uvicorn", target, "--port", str(port), "--workers", str(workers),
            *(["--factory"] if factory else [])]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--factory", action="store_true")
    args = parser.parse_args()
    uvicorn.run(
        args.target,
        factory=args.factory,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
