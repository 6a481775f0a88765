"""Serving the app in N worker processes (``serve`` and ``dev``).

Each worker is a whole app (its own pools, Kafka clients and background tasks) on the shared port; the
background work is safe in every worker (README, "Workers"). Workers import the app from a factory
string and read their settings from the environment, so whatever the parent decided (the embedded
stack's URLs, the dev key) is handed over in ``os.environ``.
"""

from __future__ import annotations

import os

__all__ = ["run_workers", "worker_count"]


def worker_count(configured: int) -> int:
    """``configured``, or the number of CPU cores this process may use when it is 0."""
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def run_workers(host: str, port: int, workers: int, environment: dict[str, str]) -> None:
    """Serve ``create_app`` with uvicorn in ``workers`` processes until SIGINT/SIGTERM.

    Args:
        host: Interface to listen on.
        port: TCP port (shared by the workers: uvicorn's supervisor binds it once).
        workers: Number of worker processes; 1 serves in this process.
        environment: Variables the workers' settings are read from, on top of this process's.
    """
    import uvicorn

    os.environ.update(environment)
    uvicorn.run(
        "omninode_bridge.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        proxy_headers=False,  # the client IP is resolved by OMNINODE_TRUSTED_PROXIES alone
    )
