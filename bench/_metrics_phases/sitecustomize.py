"""Phase timestamps of ``POST /execute`` for ``bench.metrics --phases`` (never imported by the app itself).

``bench.metrics --phases`` puts this directory first on the served app's ``PYTHONPATH`` and names a file in
``OMNINODE_BENCH_PHASES``; Python imports ``sitecustomize`` at start-up in the server and in every worker it
spawns, and this one wraps the execute path's steps (by class attribute, so the app's code is unchanged) to
record, per request, the wall clock (``perf_counter``) and the thread's CPU time (``thread_time``) at each
step's start and end. Each worker appends its requests as JSON lines to ``<file>.<pid>``.
"""

from __future__ import annotations

import os

_PATH = os.environ.get("OMNINODE_BENCH_PHASES")

if _PATH:
    import atexit
    import contextvars
    import functools
    import json
    import time
    from typing import Any

    _current: contextvars.ContextVar[list[tuple[str, float, float]] | None] = contextvars.ContextVar(
        "bench_phases", default=None
    )
    _done: list[list[tuple[str, float, float]]] = []

    def _stamp(name: str) -> None:
        record = _current.get()  # the request's list (tasks it starts inherit it)
        if record is not None:
            record.append((name, time.perf_counter(), time.thread_time()))

    def _flush() -> None:
        if _done:
            with open(f"{_PATH}.{os.getpid()}", "a", encoding="utf-8") as out:
                out.writelines(json.dumps(record) + "\n" for record in _done)
            _done.clear()

    def _wrap(owner: Any, name: str, label: str) -> None:
        function = getattr(owner, name)
        if hasattr(function, "__wrapped__"):
            return
        if _is_async(function):

            @functools.wraps(function)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                _stamp(label + ">")
                try:
                    return await function(*args, **kwargs)
                finally:
                    _stamp(label + "<")

            setattr(owner, name, timed_async)
        else:

            @functools.wraps(function)
            def timed(*args: Any, **kwargs: Any) -> Any:
                _stamp(label + ">")
                try:
                    return function(*args, **kwargs)
                finally:
                    _stamp(label + "<")

            setattr(owner, name, timed)

    def _is_async(function: Any) -> bool:
        import inspect

        return inspect.iscoroutinefunction(function)

    def _install() -> None:
        import litestar

        from omninode_bridge.modules.metrics.services import coordination, executor, recording, upstream

        app_call = litestar.Litestar.__call__

        async def timed_app(self: Any, scope: Any, receive: Any, send: Any) -> None:
            if scope.get("type") != "http" or scope.get("path") != "/execute":
                await app_call(self, scope, receive, send)
                return
            record: list[tuple[str, float, float]] = []
            token = _current.set(record)
            _stamp("app>")

            async def timed_send(message: Any) -> None:
                if message["type"] == "http.response.start":
                    _stamp("respond>")
                await send(message)
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    _stamp("respond<")

            try:
                await app_call(self, scope, receive, timed_send)
            finally:
                _stamp("app<")
                _current.reset(token)
                _done.append(record)
                if len(_done) >= 200:
                    _flush()

        litestar.Litestar.__call__ = timed_app  # type: ignore[method-assign]
        for owner, name, label in (
            (executor.ModelExecutor, "prepare", "prepare"),
            (executor.ModelExecutor, "run", "run"),
            (executor.ModelExecutor, "_score", "score"),
            (executor.ModelExecutor, "_answer", "answer"),
            (executor.ModelExecutor, "_current_recommendations", "recommendations"),
            (coordination.Coordination, "start", "redis_start"),
            (coordination.Coordination, "finish", "redis_end"),
            (upstream.UpstreamClient, "complete", "upstream"),
            (recording.Recorder, "record", "record"),
            (recording.Recorder, "_store", "commit"),
        ):
            _wrap(owner, name, label)

    atexit.register(_flush)
    _install()
