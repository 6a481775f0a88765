"""Registry figures beside their baselines from the same run (not run in CI; ``make bench`` runs it).

On a fresh embedded stack, the app served as production does (``omninode-bridge serve``, one worker):

Each figure gives the CPU time per request of the serving process (psutil, user + system) beside its latency: on a
shared machine latency mostly measures the wait for a core, CPU per request does not.

* **discovery**: ``GET /registry/nodes?name=&status=passing`` (20 instances of the service among 200 nodes) under
  wrk, 16 connections, vs the bare Litestar endpoint (``bench._bare``, ``GET /health/live``) under the same load:
  flat out (one worker, and two as ``serve`` runs by default on two cores), and under a load below saturation
  (each connection waits 10 ms between requests: ~1,500 lookups/s offered), where p99 is the lookup's own
  latency rather than the queue of 16 connections on a saturated worker;
* **heartbeats**: ``PUT /registry/nodes/{id}/heartbeat`` from 16 concurrent asyncio clients (httpx, keep-alive)
  vs ``SET key 1 EX 15`` from the same number of redis-py asyncio clients, both from this process;
* **proxy**: ``GET /proxy/bare/health/live`` vs ``GET /health/live`` on the upstream directly: added latency at
  1 connection (p50, p99 difference) and throughput at 16 connections (ratio). Captures go to hooks meanwhile; the
  run reports how many were written or dropped. On a loaded machine wall-clock latency mostly measures the wait for
  a core, so the run also reports CPU time per request of the app process (everything it does for a proxied call:
  the forward, the capture's write, the relay to Kafka and the hooks processor pairing it) beside the upstream's.

Numbers from a shared 2-core machine are indicative; the ratios are what to compare.

Run: ``.venv/bin/python -m bench.registry [--seconds 5]`` (needs ``wrk``).
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable

import httpx
import psutil
from redis.asyncio import Redis

from bench._tools import Load, serve_app, serve_bare, table_bench, worker_processes, wrk
from omninode_bridge.embedded import EmbeddedStack

KEY = "onb_bench_registry_key_0123456789abcdef"
AUTH = {"x-api-key": KEY}
GET = "function body(tid, n) return nil end\n"
CLIENTS = 16
#: Unmeasured warm-up before discovery. The consumer groups join ~5 s after start-up (Tansu answers a JoinGroup after
#: half the session timeout) and then catch up on the registrations' events: with a 2 s warm-up the first measured
#: run caught that burst (p99 50-110 ms; 11-16 ms in the runs after it).
WARMUP_S = 8
#: Think time per connection for the discovery run under load (16 connections: ~1,500 lookups/s offered).
THINK_MS = 10
rows: list[tuple[str, str, str, str, str]] = []


def row(figure: str, ours: str, baseline: str, ratio: float | None, target: str) -> None:
    rows.append((figure, ours, baseline, "" if ratio is None else f"{ratio:.3f}", target))
    print(f"  {figure}: {ours} | {baseline} | {rows[-1][3]}", flush=True)


def fmt(load: Load, unit: str = "req/s", cpu_us: float | None = None) -> str:
    cpu = "" if cpu_us is None else f", CPU {cpu_us:,.0f} us/req"
    return f"{load.rate:,.0f} {unit}, p50 {load.p50_ms:.2f} p99 {load.p99_ms:.2f} ms{cpu}"


def cpu_of(processes: list[psutil.Process], run: Callable[[], Load]) -> tuple[Load, float]:
    """``run()``'s load and the CPU time its server processes spent per request meanwhile (microseconds)."""
    before = sum(_cpu(p) for p in processes)
    load = run()
    return load, (sum(_cpu(p) for p in processes) - before) * 1e6 / max(1, load.requests)


def _register(app: str, bare: str) -> None:
    port = urllib.parse.urlsplit(bare).port
    with httpx.Client(base_url=app, headers=AUTH, timeout=30) as http:
        for i in range(200):
            name = "bench-svc" if i < 20 else f"other-{i}"
            node = {"node_id": f"bench-{i}", "name": name, "node_type": "service", "version": "1.2.0",
                    "address": "10.0.0.1", "port": 8000 + i,
                    "capabilities": [{"name": "stamping", "version": f"1.{i % 10}.0"}]}  # fmt: skip
            http.post("/registry/nodes", json=node).raise_for_status()
        for i in range(CLIENTS):
            node = {"node_id": f"beat-{i}", "name": "bench-beat", "node_type": "service", "version": "1.0.0",
                    "address": "10.0.0.2", "check": {"kind": "ttl", "ttl": 15, "status": "passing"}}  # fmt: skip
            http.post("/registry/nodes", json=node).raise_for_status()
        upstream = {"node_id": "bare-1", "name": "bare", "node_type": "service", "version": "1.0.0",
                    "address": "127.0.0.1", "port": port}  # fmt: skip
        http.post("/registry/nodes", json=upstream).raise_for_status()
        deadline = time.monotonic() + 10  # the proxy's cache sees the registration after the change feed's wake-up
        while http.get("/proxy/bare/health/live").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)


async def _rate(worker: Callable[[int], Awaitable[None]], seconds: float) -> float:
    """Calls per second of ``CLIENTS`` concurrent loops of ``worker(i)`` for ``seconds``."""
    count = 0
    stop = time.monotonic() + seconds

    async def loop(i: int) -> None:
        nonlocal count
        while time.monotonic() < stop:
            await worker(i)
            count += 1

    began = time.monotonic()
    await asyncio.gather(*(loop(i) for i in range(CLIENTS)))
    return count / (time.monotonic() - began)


async def heartbeats(app: str, redis_url: str, seconds: float) -> tuple[float, float]:
    """Heartbeats/s through the API and ``SET EX``/s on Redis, each from ``CLIENTS`` asyncio clients."""
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=app, headers=AUTH, limits=limits, timeout=30) as http:

        async def beat(i: int) -> None:
            (await http.put(f"/registry/nodes/beat-{i}/heartbeat")).raise_for_status()

        api = await _rate(beat, seconds)
    redis = Redis.from_url(redis_url, max_connections=CLIENTS)

    async def set_ex(i: int) -> None:
        await redis.set(f"bench:ttl:{i}", "1", ex=15)

    plain = await _rate(set_ex, seconds)
    await redis.aclose()
    return api, plain


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _captures(app: str) -> str:
    text = httpx.get(app + "/metrics", timeout=10).text
    found = dict(re.findall(r'omninode_registry_proxy_captures_total\{outcome="(\w+)"\} ([0-9.e+]+)', text))
    return ", ".join(f"{k} {float(v):,.0f}" for k, v in sorted(found.items())) or "none counted"


def run(stack: EmbeddedStack, seconds: float) -> None:
    urls = stack.urls
    env = {
        "OMNINODE_ENV": "test", "OMNINODE_DATABASE_URL": urls["database_url"], "OMNINODE_REDIS_URL": urls["redis_url"],
        "OMNINODE_KAFKA_BOOTSTRAP_SERVERS": urls["kafka"], "OMNINODE_API_KEYS": f"bench:{KEY}:admin",
        "OMNINODE_RATE_LIMIT_REQUESTS": "1000000000", "OMNINODE_LOG_LEVEL": "WARNING",
        "OMNINODE_REGISTRY_ALLOW_PRIVATE_ADDRESSES": "true",
    }  # fmt: skip

    def load(url: str, headers: dict[str, str], connections: int) -> Load:
        result = wrk(url, GET, headers, connections=connections, seconds=seconds, method="GET")
        if result.errors:
            print(f"  warning: {url} c={connections}: {result.errors} errors", flush=True)
        return result

    with serve_bare() as (bare, bare_server), serve_app(env, 1) as (app, server):
        worker, upstream = worker_processes(server)[0], psutil.Process(bare_server.pid)
        _register(app, bare)
        print("discovery", flush=True)
        bare16, bare_us = cpu_of([upstream], lambda: load(bare + "/health/live", {}, CLIENTS))
        # Warm-up, not measured: just after start-up the consumers join their groups and the first connections
        # open (as in bench.suite).
        wrk(app + "/registry/nodes?name=bench-svc", GET, AUTH, connections=CLIENTS, seconds=WARMUP_S, method="GET")
        found, found_us = cpu_of([worker], lambda: load(app + "/registry/nodes?name=bench-svc&status=passing", AUTH,
                                                        CLIENTS))  # fmt: skip
        row(f"GET /registry/nodes (20 of 200), {CLIENTS} conns", fmt(found, "lookups/s", found_us),
            "bare " + fmt(bare16, cpu_us=bare_us), found.rate / bare16.rate, "p99 < 10 ms")  # fmt: skip
        by_range, range_us = cpu_of([worker], lambda: load(
            app + "/registry/nodes?capability=stamping&version=%5E1.2&status=passing", AUTH, CLIENTS))  # fmt: skip
        row(f"GET /registry/nodes?capability&version=^1.2, {CLIENTS} conns", fmt(by_range, "lookups/s", range_us),
            "bare " + fmt(bare16, cpu_us=bare_us), by_range.rate / bare16.rate, "p99 < 10 ms")  # fmt: skip
        # Flat out, p99 is mostly the queue of 16 connections on one busy worker (Little's law); under a load
        # it can carry, it is the lookup's own latency.
        paced = wrk(app + "/registry/nodes?name=bench-svc&status=passing", GET, AUTH, connections=CLIENTS,
                    seconds=seconds, method="GET", think_ms=THINK_MS)  # fmt: skip
        bare_paced = wrk(bare + "/health/live", GET, {}, connections=CLIENTS, seconds=seconds, method="GET",
                         think_ms=THINK_MS)  # fmt: skip
        row(f"GET /registry/nodes under load ({CLIENTS} conns, {THINK_MS} ms think time)", fmt(paced, "lookups/s"),
            "bare " + fmt(bare_paced), paced.p99_ms / bare_paced.p99_ms, "p99 < 10 ms")  # fmt: skip
        print("heartbeats", flush=True)
        api, plain = asyncio.run(heartbeats(app, urls["redis_url"], seconds))
        row(f"PUT heartbeat, {CLIENTS} asyncio clients", f"{api:,.0f} beats/s", f"Redis SET EX {plain:,.0f}/s",
            api / plain, "")  # fmt: skip
        beats, beat_us = cpu_of([worker], lambda: wrk(app + "/registry/nodes/beat-0/heartbeat", GET, AUTH,
                                                      connections=CLIENTS, seconds=seconds, method="PUT"))  # fmt: skip
        row(f"PUT heartbeat, wrk {CLIENTS} conns", fmt(beats, "beats/s", beat_us),
            f"Redis SET EX (Python) {plain:,.0f}/s", beats.rate / plain, "")  # fmt: skip
        print("proxy", flush=True)
        direct1, direct_us = cpu_of([upstream], lambda: load(bare + "/health/live", {}, 1))
        proxied1, proxied_us = cpu_of([worker], lambda: load(app + "/proxy/bare/health/live", AUTH, 1))
        added50, added99 = proxied1.p50_ms - direct1.p50_ms, proxied1.p99_ms - direct1.p99_ms
        row("proxy added latency, 1 conn",
            f"+{added50:.2f} ms p50, +{added99:.2f} ms p99 ({fmt(proxied1, cpu_us=proxied_us)})",
            "direct " + fmt(direct1, cpu_us=direct_us), proxied1.p50_ms / direct1.p50_ms,
            "< 5 ms added (goal < 1 ms p50)")  # fmt: skip
        app_cpu, up_cpu = _cpu(worker), _cpu(upstream)
        proxied16 = load(app + "/proxy/bare/health/live", AUTH, CLIENTS)
        row(f"proxied throughput, {CLIENTS} conns", fmt(proxied16), "direct " + fmt(bare16),
            proxied16.rate / bare16.rate, "")  # fmt: skip
        time.sleep(2)  # the capture writer, the relay and the hooks processor catch up (their CPU counts too)
        # Everything the app process did meanwhile, per proxied call: also the captures of the 1-connection run
        # still being relayed and processed, and its idle work (relay polls, checker, consumers' heartbeats).
        app_ms = (_cpu(worker) - app_cpu) * 1000 / proxied16.requests
        up_ms = (_cpu(upstream) - up_cpu) * 1000 / proxied16.requests
        row("app CPU per proxied request", f"{app_ms:.2f} ms (forward + capture + relay + hooks, idle work)",
            f"upstream {up_ms:.2f} ms", app_ms / up_ms, "")  # fmt: skip
        row("proxy captures (hooks)", _captures(app), "", None, "none dropped")
    # Discovery as `serve` runs it by default on this machine: one worker per core.
    with serve_bare() as (bare, bare_server), serve_app(env, 2) as (app, server):
        _register(app, bare)
        url = app + "/registry/nodes?name=bench-svc&status=passing"
        wrk(url, GET, AUTH, connections=CLIENTS, seconds=WARMUP_S, method="GET")  # warm-up, as above
        two, two_us = cpu_of(worker_processes(server), lambda: load(url, AUTH, CLIENTS))
        bare16, bare_us = cpu_of([psutil.Process(bare_server.pid)], lambda: load(bare + "/health/live", {}, CLIENTS))
        row(f"GET /registry/nodes, 2 workers, {CLIENTS} conns", fmt(two, "lookups/s", two_us),
            "bare (1 process) " + fmt(bare16, cpu_us=bare_us), two.rate / bare16.rate, "p99 < 10 ms")  # fmt: skip
    # The same proxy without captures: what the forward itself adds, without the capture pipeline's CPU beside it.
    with serve_bare() as (bare, _), serve_app({**env, "OMNINODE_REGISTRY_PROXY_CAPTURE": "false"}, 1) as (app, _):
        _register(app, bare)
        direct1 = load(bare + "/health/live", {}, 1)
        proxied1 = load(app + "/proxy/bare/health/live", AUTH, 1)
        added50, added99 = proxied1.p50_ms - direct1.p50_ms, proxied1.p99_ms - direct1.p99_ms
        row("proxy added latency, captures off, 1 conn", f"+{added50:.2f} ms p50, +{added99:.2f} ms p99",
            "direct " + fmt(direct1), proxied1.p50_ms / direct1.p50_ms, "< 5 ms added (goal < 1 ms p50)")  # fmt: skip
        direct16 = load(bare + "/health/live", {}, CLIENTS)
        proxied16 = load(app + "/proxy/bare/health/live", AUTH, CLIENTS)
        row(f"proxied throughput, captures off, {CLIENTS} conns", fmt(proxied16), "direct " + fmt(direct16),
            proxied16.rate / direct16.rate, "")  # fmt: skip


def main() -> None:
    table_bench(__doc__, "bench-registry-", run, rows)


if __name__ == "__main__":
    main()
