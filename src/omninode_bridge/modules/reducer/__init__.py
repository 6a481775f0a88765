"""NodeBridgeReducer: aggregates stamp events per namespace into ``bridge_states`` (``contracts/reducer/``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from omninode_bridge.core.contracts import contracts_dir, load_contract
from omninode_bridge.core.module import Module, Runtime
from omninode_bridge.modules.reducer import schemas
from omninode_bridge.modules.reducer.consumers import ReducerConsumer
from omninode_bridge.modules.reducer.controllers import NamespaceStatsController
from omninode_bridge.modules.reducer.schemas import ReducerContract
from omninode_bridge.modules.reducer.services import NamespaceReducer, aggregate
from omninode_bridge.settings import Settings

__all__ = [
    "MODULE",
    "NamespaceReducer",
    "ReducerContract",
    "aggregate",
    "load_reducer_contract",
    "schemas",
]


def load_reducer_contract(settings: Settings) -> ReducerContract:
    """The reducer contract of the configured contracts directory, validated.

    Raises:
        ContractError: The contract or a subcontract is missing or invalid.
    """
    return load_contract(contracts_dir(settings.server.contracts_dir) / "reducer" / "contract.yaml", ReducerContract)


@contextlib.asynccontextmanager
async def _reducer(runtime: Runtime) -> AsyncIterator[None]:
    contract = load_reducer_contract(runtime.settings)
    runtime.catalog.require(contract.aggregation.input.topic)
    reducer = NamespaceReducer(contract)
    consumer = ReducerConsumer(runtime, reducer)
    runtime.extras["reducer"] = reducer
    task = asyncio.create_task(consumer.run(), name="reducer")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _check(settings: Settings) -> None:
    contract = load_reducer_contract(settings)
    NamespaceReducer(contract)  # validates its FSM


MODULE = Module(name="reducer", route_handlers=[NamespaceStatsController], lifespans=[_reducer], checks=[_check])
