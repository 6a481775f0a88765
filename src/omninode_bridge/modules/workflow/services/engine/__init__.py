"""The engine of one app process: claim runnable tasks, run them under their lease, record how they ended.

Any number of processes run it on one database. It wakes on its own process's commits that made tasks ready
(submits, cancels, retries, compensations started), on a ``NOTIFY wf_ready`` from another process (sent by
a process without an engine after such commits, or by an engine that found more than it could take:
``wake.Waker``), when a retry is due, and otherwise polls every ``poll_seconds``. Both claim loops wait on one
signal; a loop woken by a wake-up that the other loop's claim already covers does not claim
(``wake.Wake``). Tasks are claimed in batches; ``noop`` tasks
complete in the claim's own transaction (``batch.start_batch``), the others run under a lease that is renewed
while they run; a process that dies leaves leases that expire, and the tasks are claimed again (a new attempt
number fences the old one out). Free runs whose tasks a claim completed without ending them are settled right
after its commit (``batch.settle``), retried within ``_SETTLE_RETRY_S`` when another transaction held the run.
"""

from __future__ import annotations

from omninode_bridge.modules.workflow.services.engine._engine import Engine

__all__ = ["Engine"]
