"""Where the time of ``POST /execute`` goes, for ``bench.metrics --phases`` and ``--profile``.

``--phases`` (wall clock at one connection): the app is served a second time with the phase stamps of
``bench/_metrics_phases/sitecustomize.py``; per phase, the median wall time and the median CPU time of the
serving thread over every request of the run. At one connection the added latency is these in series: CPU,
plus every round trip awaited (the Redis start, the upstream call, the commit alongside the Redis end).

``--profile`` (CPU at 16 connections): py-spy (``--gil``: samples only while the thread holds the GIL, so
waiting is not counted) on the app's worker and on the bare Litestar endpoint, each stack put in the phase
of its innermost recognised frame; each phase's share of the samples times the process's CPU per request
(psutil, same run) gives its CPU per request. Needs ``py-spy`` next to the interpreter or on ``PATH``.
"""

from __future__ import annotations

import collections
import glob
import json
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil

from bench._tools import Load

#: (label, start stamp, end stamp) of the ``--phases`` table, in request order.
PHASES = (
    ("platform middleware, routing, body (in)", "app>", "prepare>"),
    ("prepare: checks before Redis", "prepare>", "redis_start>"),
    ("Redis start (one script: stats, cooldown, spend, slot)", "redis_start>", "redis_start<"),
    ("prepare: plan after Redis", "redis_start<", "prepare<"),
    ("upstream call", "upstream>", "upstream<"),
    ("scoring", "score>", "score<"),
    ("record: rows and event built", "record>", "record<"),
    ("record built -> commit and Redis end sent", "record<", "answer>"),
    ("  commit (one statement; concurrent)", "commit>", "commit<"),
    ("  Redis end (one script; concurrent)", "redis_end>", "redis_end<"),
    ("answer built (while the commit runs)", "answer>", "answer<"),
    ("recommendations (cached 0.5 s)", "recommendations>", "recommendations<"),
    ("wait for the commit after the answer is built", "recommendations<", "run<"),
    ("response: encode, middleware out, first send", "run<", "respond>"),
    ("response: send", "respond>", "respond<"),
    ("after the send", "respond<", "app<"),
    ("TOTAL in the app", "app>", "app<"),
)

#: (label, frames) for ``--profile``: a stack belongs to the first label with one of its frames.
PROFILE_PHASES = (
    ("Redis start (script call)", ("Coordination.start", "Coordination.snapshot")),
    ("upstream call (HTTP/1.1 client, decode)", ("UpstreamClient.complete",)),
    ("scoring", ("ModelExecutor._score",)),
    ("record: rows and event built", ("Recorder.record",)),
    ("record: the commit's statement (client side)", ("Recorder._store",)),
    ("Redis end (script call)", ("Coordination.finish",)),
    ("answer and recommendations built", ("ModelExecutor._answer", "_current_recommendations")),
    ("routing and plan (prepare)", ("ModelExecutor.prepare",)),
    ("execute handler, the rest", ("MetricsController.execute", "ModelExecutor.run")),
    ("response: render and send (through the middleware)", ("ASGIResponse", "RequestResponseCycle.send",
                                                            "Response.to_asgi_response")),
    ("Litestar routing, body parsing, dependencies", ("HTTPRoute.handle", "_get_response_for_request")),
    ("platform middleware (auth, limits, metrics, correlation)", (
        "SecurityMiddleware", "HttpMetricsMiddleware", "CorrelationMiddleware", "InputGuardMiddleware",
        "UnmatchedRouteLimits", "ExceptionHandlerMiddleware", "ASGIRouter.__call__", "Litestar.__call__")),
    ("HTTP server (uvicorn's protocol)", ("httptools_impl",)),
    ("background (stats flush, outbox relay, workflow engine, Kafka)", (
        "StatsAggregator", "OutboxRelay", "Engine._loop", "aiokafka")),
)  # fmt: skip
_OTHER = "event loop, GC, other"


def phase_table(prefix: str) -> list[str]:
    """The ``--phases`` table from the stamp files ``<prefix>.<pid>``."""
    records = [json.loads(line) for name in glob.glob(prefix + ".*") for line in Path(name).read_text().splitlines()]
    lines = [f"{len(records)} requests at one connection; median per request (ms)",
             f"| {'phase':58} | wall p50 | CPU p50 |", f"|{'-' * 60}|----------|---------|"]  # fmt: skip
    for label, start, end in PHASES:
        walls, cpus = [], []
        for record in records:
            at = {name: (wall, cpu) for name, wall, cpu in record}
            if start in at and end in at:
                walls.append((at[end][0] - at[start][0]) * 1000)
                cpus.append((at[end][1] - at[start][1]) * 1000)
        if walls:
            lines.append(f"| {label:58} | {statistics.median(walls):8.3f} | {statistics.median(cpus):7.3f} |")
    return lines


def py_spy() -> str | None:
    """py-spy next to the interpreter (a venv's ``bin``) or on ``PATH``."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profiled(pid: int, seconds: float, out: Path, run: Callable[[], Load]) -> tuple[Load, float, dict[str, float]]:
    """Run ``run`` (a wrk load) under ``py-spy record --gil`` of ``pid``.

    Returns:
        The load, the process's CPU ms per request (psutil), and each phase's share of the samples.
    """
    spy = py_spy()
    if spy is None:
        sys.exit("--profile needs py-spy (pip install py-spy)")
    process = psutil.Process(pid)
    command = [spy, "record", "-p", str(pid), "-r", "250", "-d", str(max(1, int(seconds))), "-f", "raw", "-o",
               str(out), "--gil", "--nonblocking"]  # fmt: skip
    before = sum(process.cpu_times()[:2])
    sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    load = run()
    cpu_ms = (sum(process.cpu_times()[:2]) - before) * 1000 / max(1, load.requests)
    sampler.wait()
    return load, cpu_ms, _shares(out)


def _shares(path: Path) -> dict[str, float]:
    counts: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            counts[_phase_of(stack)] += int(count)
    total = sum(counts.values()) or 1
    return {label: n / total for label, n in counts.items()}


def _phase_of(stack: str) -> str:
    return next((label for label, frames in PROFILE_PHASES if any(f in stack for f in frames)), _OTHER)


def profile_table(execute: tuple[float, dict[str, float]], bare: tuple[float, dict[str, float]]) -> list[str]:
    """CPU per request of each phase, ``/execute`` beside the bare endpoint (share x CPU per request)."""
    (app_ms, app_shares), (bare_ms, bare_shares) = execute, bare
    lines = [
        f"| {'phase (16 connections, py-spy --gil)':62} | /execute us/req | bare us/req |",
        f"|{'-' * 64}|---|---|",
    ]
    for label in [label for label, _ in PROFILE_PHASES] + [_OTHER]:
        mine, theirs = app_shares.get(label, 0.0) * app_ms * 1000, bare_shares.get(label, 0.0) * bare_ms * 1000
        lines.append(f"| {label:62} | {mine:6.0f} ({app_shares.get(label, 0.0):4.0%}) | {theirs:5.0f} |")
    lines.append(f"| {'TOTAL (psutil CPU per request)':62} | {app_ms * 1000:6.0f} | {bare_ms * 1000:5.0f} |")
    return lines
