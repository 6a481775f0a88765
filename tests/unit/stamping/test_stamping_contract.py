"""The stamping contract: $ref subcontracts, unknown keys, its old place, and a step without a callable."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from omninode_bridge.core.contracts import ContractError, load_contract
from omninode_bridge.core.steps import validate_contract
from omninode_bridge.modules.stamping.contract import StampingContract, load_stamping_contract
from omninode_bridge.modules.stamping.services import STEP_NAMES, check_contract_steps
from tests.support.contracts_helper import contracts_copy

STEPS_FILE = "stamping/subcontracts/workflow_steps.yaml"


def test_contract_refs_resolve_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    def typo(steps: dict[str, Any]) -> None:
        steps["steps"][0]["timeout"] = 5

    directory = contracts_copy(tmp_path, typo, file=STEPS_FILE)
    with pytest.raises(ContractError, match="timeout"):
        load_contract(directory / "stamping" / "contract.yaml", StampingContract)
    (directory / "stamping" / "subcontracts" / "workflow_steps.yaml").unlink()
    with pytest.raises(ContractError, match="not found"):
        load_contract(directory / "stamping" / "contract.yaml", StampingContract)


def test_repository_contract_is_consistent_and_fully_handled() -> None:
    contract = load_stamping_contract(None, "http://onextree.invalid")
    validate_contract(contract)
    check_contract_steps(contract)
    names = [s.name for s in contract.workflow_coordination.steps]
    assert set(STEP_NAMES) <= set(names)
    assert contract.routing.services[0].url == "http://onextree.invalid"


def test_contract_in_its_old_place_is_still_read(tmp_path: Path) -> None:
    directory = contracts_copy(tmp_path, lambda _: None)
    shutil.move(directory / "stamping", directory / "orchestrator")
    assert load_stamping_contract(str(directory), None).name == "NodeBridgeOrchestrator"


def test_contract_step_without_a_handler_is_refused(tmp_path: Path) -> None:
    def unknown_step(steps: dict[str, Any]) -> None:
        steps["steps"].append({"name": "sign_with_hsm", "type": "effect", "timeout_ms": 100})

    directory = contracts_copy(tmp_path, unknown_step, file=STEPS_FILE)
    with pytest.raises(ValueError, match=r"no handler for contract steps \['sign_with_hsm'\]"):
        check_contract_steps(load_stamping_contract(str(directory), None))
