"""The stamping workflow's contract (``contracts/stamping/contract.yaml`` with its ``$ref`` subcontracts)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import structlog

from omninode_bridge.core.contracts import contracts_dir, load_contract
from omninode_bridge.core.steps import WorkflowContract

__all__ = ["StampingContract", "load_stamping_contract"]

log = structlog.get_logger(__name__)

#: Where the contract lived while the orchestrator module ran it; still read from a configured directory.
_LEGACY_DIR = "orchestrator"


class StampingContract(WorkflowContract, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The stamping workflow (node ``NodeBridgeOrchestrator``): steps, OnexTree routing, FSM and events."""

    node_type: Literal["ORCHESTRATOR"]


def _contract_path(directory: Path) -> Path:
    path = directory / "stamping" / "contract.yaml"
    legacy = directory / _LEGACY_DIR / "contract.yaml"
    if not path.exists() and legacy.exists():
        # A contracts directory configured before the move keeps working; the warning says what to do.
        log.warning("stamping contract read from its old place; move it to stamping/", path=str(legacy))
        return legacy
    return path


def load_stamping_contract(configured_dir: str | None, onextree_url: str | None) -> StampingContract:
    """The stamping contract of the contracts directory (``server.contracts_dir``), validated as a schema.

    Args:
        configured_dir: The configured contracts directory, or None for the repository's.
        onextree_url: Substituted for ``${OMNINODE_ONEXTREE_URL}`` (unset disables the OnexTree step).

    Raises:
        ContractError: The contract or a subcontract is missing or invalid.
    """
    path = _contract_path(contracts_dir(configured_dir))
    return load_contract(path, StampingContract, {"OMNINODE_ONEXTREE_URL": onextree_url})
