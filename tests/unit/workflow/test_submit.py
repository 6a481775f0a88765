"""Submitting: a batch's limits and its per-index errors, the spec rows' encoding, the engine's wake-up count."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from omninode_bridge.core.errors import ProblemError
from omninode_bridge.modules.workflow.schemas import WorkflowDefinition
from omninode_bridge.modules.workflow.services.submit import Submitter
from omninode_bridge.modules.workflow.services.submit._rows import Spec as _Spec
from omninode_bridge.modules.workflow.services.wake import Wake
from omninode_bridge.modules.workflow.settings import WorkflowSettings


def submitter(**limits: Any) -> Submitter:
    # Validation needs neither the publisher nor the waker (they are used once the batch is valid).
    return Submitter(WorkflowSettings(**limits), publisher=None, queries={"q"}, waker=None, database=None)  # type: ignore[arg-type]


def definition(*tasks: dict[str, Any]) -> WorkflowDefinition:
    return msgspec.convert({"name": "t", "tasks": list(tasks)}, WorkflowDefinition)


def refusal(call: Any) -> list[tuple[str | None, str]]:
    with pytest.raises(ProblemError) as caught:
        call()
    assert caught.value.status_code == 422
    return [(e["field"], e["message"]) for e in caught.value.extra["errors"]]


def test_every_invalid_definition_of_a_batch_is_named_by_its_index() -> None:
    good = definition({"id": "a", "kind": "noop"})
    cyclic = definition(
        {"id": "a", "kind": "noop", "depends_on": ["b"]}, {"id": "b", "kind": "noop", "depends_on": ["a"]}
    )
    sql = definition({"id": "s", "kind": "sql", "params": {"query": "missing"}})
    assert refusal(lambda: submitter().check_many([good, cyclic, good, sql])) == [
        ("workflows[1].tasks", "the dependencies form a cycle: a -> b -> a"),
        ("workflows[3].tasks[0].params.query", "no query named 'missing' is declared"),
    ]
    checked = submitter().check_many([good, good])
    assert [c.order for c in checked] == [["a"], ["a"]]


def test_a_batch_over_its_limits_is_refused_before_any_definition_is_checked() -> None:
    two = definition({"id": "a", "kind": "noop"}, {"id": "b", "kind": "noop"})
    assert refusal(lambda: submitter(max_batch=2, max_batch_tasks=5).check_many([two] * 3)) == [
        ("workflows", "3 workflows is over the limit of 2"),
        ("workflows", "6 tasks in all is over the limit of 5"),
    ]


def test_a_definition_over_its_size_is_refused_with_the_size() -> None:
    big = definition({"id": "a", "kind": "noop", "params": {"text": "x" * 2000}})
    errors = refusal(lambda: submitter(max_definition_bytes=1024).check_many([big]))
    assert errors[0][0] == "workflows[0]"
    assert errors[0][1].startswith("the definition is ")
    assert errors[0][1].endswith(" bytes, over 1024")


def test_a_task_row_keeps_its_spec_without_id_kind_and_dependencies() -> None:
    second = {"id": "b", "kind": "noop", "depends_on": ["a"], "params": {"v": 1}, "when": "{{ inputs.go }}"}
    task = definition({"id": "a", "kind": "noop"}, second).tasks[1]
    spec = msgspec.json.decode(msgspec.json.encode(_Spec(params=task.params, retry=task.retry,
                                                         timeout_s=task.timeout_s, when=task.when,
                                                         compensate=task.compensate)))  # fmt: skip
    expected = {k: v for k, v in msgspec.to_builtins(task).items() if k not in ("id", "kind", "depends_on")}
    assert spec == expected


def test_the_wake_up_counts_each_set() -> None:
    wake = Wake()
    wake.set()
    wake.clear()
    wake.set()
    assert (wake.generation, wake.is_set()) == (2, True)
