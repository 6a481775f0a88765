"""NodeBridgeReducer: aggregates stamp events per namespace into ``bridge_states`` (``contracts/reducer/``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from omninode_bridge.core.contracts import load_contract
from omninode_bridge.core.events import ConsumerResources
from omninode_bridge.core.module import Module, Resources, background
from omninode_bridge.core.settings import KafkaSettings
from omninode_bridge.modules.reducer import schemas
from omninode_bridge.modules.reducer.consumers import ReducerConsumer
from omninode_bridge.modules.reducer.contract import ReducerContract
from omninode_bridge.modules.reducer.controllers import NamespaceStatsController
from omninode_bridge.modules.reducer.services import NamespaceReducer, aggregate

__all__ = [
    "NamespaceReducer",
    "ReducerContract",
    "aggregate",
    "build_module",
    "load_reducer_contract",
    "schemas",
]


def load_reducer_contract(contracts: Path) -> ReducerContract:
    """The reducer contract of a contracts directory, validated.

    Raises:
        ContractError: The contract or a subcontract is missing or invalid.
    """
    return load_contract(contracts / "reducer" / "contract.yaml", ReducerContract)


def build_module(contracts: Path, kafka: KafkaSettings) -> Module:
    """The reducer module.

    Args:
        contracts: The contracts directory (``reducer/contract.yaml``).
        kafka: The Kafka settings its own consumer connects with.
    """

    def check() -> None:
        NamespaceReducer(load_reducer_contract(contracts))  # validates its FSM

    @contextlib.asynccontextmanager
    async def lifespan(resources: Resources) -> AsyncIterator[None]:
        contract = load_reducer_contract(contracts)
        resources.catalog.require(contract.aggregation.input.topic)
        consumers = ConsumerResources(
            database=resources.database, catalog=resources.catalog, publisher=resources.publisher
        )
        consumer = ReducerConsumer(consumers, kafka, NamespaceReducer(contract))
        async with background(consumer.run(), "reducer"):
            yield

    return Module(name="reducer", route_handlers=[NamespaceStatsController], lifespans=[lifespan], checks=[check])
