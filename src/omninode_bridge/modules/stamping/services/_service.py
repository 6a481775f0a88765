"""The stamping use case: run the workflow for one request and own its transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litestar.exceptions import HTTPException

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.steps import (
    LeadSkippedError,
    Recorder,
    RoutedService,
    RunFailedError,
    StepRunner,
    check_steps,
)
from omninode_bridge.modules.stamping.contract import StampingContract
from omninode_bridge.modules.stamping.services._hashing import HashPolicy
from omninode_bridge.modules.stamping.services._stamp_format import Keyring, render_block
from omninode_bridge.modules.stamping.services._stamps import StampLookups, StampRequest
from omninode_bridge.modules.stamping.services._workflow import STEP_NAMES, StampContext, StampSteps, run_result

__all__ = ["StampOutcome", "StampingService", "check_contract_steps"]


@dataclass(frozen=True, slots=True)
class StampOutcome:
    """A stamp made, or the existing one for this content and namespace (``created`` False)."""

    stamp_id: uuid.UUID
    file_hash: str
    stamped_content: str | None
    stamp: str
    namespace: str
    content_type: str
    size_bytes: int
    metadata_version: str
    created_at: dt.datetime
    file_path: str | None
    metadata: dict[str, Any]
    created: bool
    workflow_id: uuid.UUID
    workflow_state: str
    degraded: bool


def check_contract_steps(contract: StampingContract) -> None:
    """Fail before anything connects if a contract step has no callable.

    Raises:
        ValueError: Naming the steps without one.
    """
    routed = [s.name for s in contract.workflow_coordination.steps if s.type == "routing"]
    check_steps(contract, [*STEP_NAMES, *routed])


class StampingService(StampLookups):
    """Stamps content through the contract's workflow; looks stamps up.

    Args:
        contract: The stamping contract.
        keyring: Signs new stamps, verifies old ones.
        policy: Where hashing runs.
        services: Routed services by name.
        recorder: Records the workflow runs and stages their events.

    Raises:
        ValueError: The contract is inconsistent, or one of its steps has no callable.
    """

    def __init__(
        self,
        contract: StampingContract,
        keyring: Keyring,
        policy: HashPolicy,
        services: Mapping[str, RoutedService],
        recorder: Recorder,
    ) -> None:
        self.keyring = keyring
        self.policy = policy
        steps = StampSteps(keyring, policy, services)
        self.runner = StepRunner(contract, steps.for_contract(contract), recorder, run_result)

    async def stamp(self, uow: UnitOfWork, request: StampRequest) -> StampOutcome:
        """Run the stamping workflow in ``uow`` and commit it: the only write of a ``/stamp`` request.

        Raises:
            HTTPException: A client error a step found (invalid input); nothing is committed in ``uow``.
            RunFailedError: The workflow failed; the failed run is on record, ``uow`` is rolled back.
        """
        try:
            try:
                # New content is the common case: the stamp, its run record and its events are one statement,
                # committed on its own (one round trip). Content stamped before writes nothing there; the run
                # is made again, looking the stamp up, in a transaction.
                result = await self.runner.run(
                    uow, StampContext(request), workflow_type="stamping", correlation_id=request.correlation_id,
                    namespace=request.namespace, commit=True,
                )  # fmt: skip
            except LeadSkippedError:
                result = await self.runner.run(
                    uow, StampContext(request, deferred=False), workflow_type="stamping",
                    correlation_id=request.correlation_id, namespace=request.namespace,
                )  # fmt: skip
                await uow.commit()
        except RunFailedError as exc:
            await uow.rollback()  # the steps' writes (a stamp row, its events) go; the failure is recorded
            if isinstance(exc.cause, HTTPException) and exc.cause.status_code < 500:
                raise exc.cause from exc  # bad input found by validate_input
            raise
        context = result.context
        fields, row = context.fields, context.row
        return StampOutcome(
            stamp_id=uuid.UUID(fields["stamp_id"]), file_hash=fields["file_hash"],
            stamped_content=context.stamped_content, stamp=row.stamp if row else render_block(fields),
            namespace=request.namespace, content_type=fields["content_type"], size_bytes=int(fields["size_bytes"]),
            metadata_version=fields["metadata_version"], created_at=dt.datetime.fromisoformat(fields["created_at"]),
            file_path=row.file_path if row else request.file_path, metadata=row.details if row else request.metadata,
            created=not context.existing, workflow_id=result.workflow_id, workflow_state=result.state,
            degraded=result.degraded,
        )  # fmt: skip
