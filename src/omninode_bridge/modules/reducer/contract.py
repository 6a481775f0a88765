"""The reducer's YAML contract (``contracts/reducer/contract.yaml``): input, window, batch, persistence, FSM."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from omninode_bridge.core.contracts import ContractVersion
from omninode_bridge.core.steps import FsmSpec

__all__ = ["AggregationSpec", "ReducerContract"]


class InputSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where the reducer reads: a topic, the catalog consumer (group, retry budget), the types it counts."""

    topic: str
    consumer: str
    event_types: list[str]


class WindowSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A pending batch is persisted at the latest ``size_ms`` after its first item arrived."""

    mode: Literal["time_based"]
    size_ms: Annotated[int, msgspec.Meta(ge=1)]


class BatchSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A batch is persisted as soon as it holds ``size`` items; each poll waits at most ``max_wait_ms``."""

    size: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    max_wait_ms: Annotated[int, msgspec.Meta(ge=1)]


class AggregationSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    strategy: Literal["NAMESPACE_GROUPING"]
    input: InputSpec
    window: WindowSpec
    batch: BatchSpec
    recent_workflow_ids: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 20


class PersistenceSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    backend: Literal["postgresql"]
    table: Literal["bridge_states"]
    transaction_isolation: Literal["READ_COMMITTED", "REPEATABLE_READ", "SERIALIZABLE"] = "READ_COMMITTED"


class StateManagementSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    persistence: PersistenceSpec


class ReducerContract(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``contracts/reducer/contract.yaml`` with its subcontracts inlined."""

    contract_version: ContractVersion
    node_type: Literal["REDUCER"]
    name: str
    version: str
    aggregation: AggregationSpec
    state_management: StateManagementSpec
    fsm: FsmSpec
    description: str = ""
