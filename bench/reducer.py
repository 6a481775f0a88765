"""The reducer's items/s alone: persistence at the contract's batch, 1,000 and 5,000 beside in-memory aggregation.

Starts an embedded PostgreSQL only (no Kafka, no Redis: the figure is the reducer's decode, claim, event
log and upsert, which is what ``bench.suite`` reports too). Batches go through the consumer's own pipeline
(``InFlight``): one batch's statement in flight while the next batch is decoded.

Run: ``.venv/bin/python -m bench.reducer [--items N]``
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench._upload import reducer_rates
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.migrations import upgrade


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=50_000, help="Events per batch size (default 50,000).")
    args = parser.parse_args()
    stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix="bench-reducer-")), redis=False, kafka=False)
    stack.start()
    try:
        upgrade(stack.urls["database_url"])
        for batch, rate, memory_rate in asyncio.run(reducer_rates(stack.urls["database_url"], args.items)):
            print(f"batch {batch:>5}: {rate:>9,.0f} items/s | in memory {memory_rate:,.0f} items/s | "
                  f"ratio {rate / memory_rate:.3f}")  # fmt: skip
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
