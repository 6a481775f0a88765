"""Submitting runs: validate each definition once, then write runs, tasks and events in one statement.

``POST /workflows/batch`` writes many runs (``SUBMIT_MANY``: fresh ids, no key, every row from arrays), and so
do single ``POST /workflows`` without an ``Idempotency-Key``: those that arrive while another is being written go
together (``group_commit``); one with a key is written alone (``SUBMIT``: the key through the unique index, ``ON
CONFLICT DO NOTHING``). Either statement is the whole transaction, run on the driver through
``UnitOfWork.commit_one`` (one round trip): the runs, their task rows and their ``run.submitted``/``run.started``
outbox events, all or nothing. The statement text does not depend on the number of runs or tasks (every value
travels as an array), so it is prepared once per connection.

Each definition is JSON-encoded once: that encoding is its size check and its stored ``definition``.
"""

from __future__ import annotations

from omninode_bridge.modules.workflow.services.submit._submitter import Submitted, Submitter

__all__ = ["Submitted", "Submitter"]
