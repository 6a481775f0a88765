"""The reducer's items/s alone: persistence at the contract's batch, 1,000 and 5,000 beside in-memory aggregation.

Starts an embedded PostgreSQL only (no Kafka, no Redis: the figure is the reducer's decode, claim, event
log and upsert, which is what ``bench.suite`` reports too). Batches go through the consumer's own pipeline
(``InFlight``): one batch's statement in flight while the next batch is decoded.

Each line also gives the CPU per 1,000 events of this process (decoding, the statement's arguments, the
driver) and of PostgreSQL (all its processes): on a shared machine they hold when the items/s do not.
``--correlation uuid7`` gives the events time-ordered correlation ids instead of random ones.

Run: ``.venv/bin/python -m bench.reducer [--items N] [--correlation uuid4|uuid7]``
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench._reducer import postgres_cpu, reducer_runs
from bench._tools import discard
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.migrations import upgrade


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=50_000, help="Events per batch size (default 50,000).")
    parser.add_argument("--correlation", choices=("uuid4", "uuid7"), default="uuid4",
                        help="The events' correlation ids (default uuid4, what a request gets today).")  # fmt: skip
    args = parser.parse_args()
    stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix="bench-reducer-")), redis=False, kafka=False)
    stack.start()
    try:
        upgrade(stack.urls["database_url"])
        assert stack.postgres is not None  # started above
        server = postgres_cpu(stack.postgres.data_dir)
        runs = reducer_runs(stack.urls["database_url"], args.items, postgres=server, correlation=args.correlation)
        for run in asyncio.run(runs):
            print(f"batch {run.batch:>5}: {run.items_per_s:>9,.0f} items/s | in memory {run.memory_items_per_s:,.0f} "
                  f"items/s | ratio {run.items_per_s / run.memory_items_per_s:.3f} | CPU per 1,000 events: "
                  f"PostgreSQL {run.postgres_cpu_ms:.1f} ms, this process {run.client_cpu_ms:.1f} ms")  # fmt: skip
    finally:
        discard(stack)


if __name__ == "__main__":
    main()
