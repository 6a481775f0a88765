"""Workflow definitions: validation (every error at once, the cycle path), templates, order and backoff."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from omninode_bridge.modules.workflow.schemas import WorkflowDefinition
from omninode_bridge.modules.workflow.services import (
    TemplateError,
    backoff_seconds,
    find_cycle,
    render,
    topological_order,
    validate_definition,
)
from omninode_bridge.modules.workflow.services.templates import is_truthy


def definition(*tasks: dict[str, Any], **extra: Any) -> WorkflowDefinition:
    return msgspec.convert({"name": "t", "tasks": list(tasks), **extra}, WorkflowDefinition)


def messages(d: WorkflowDefinition, **kwargs: Any) -> list[str]:
    issues, _ = validate_definition(d, max_tasks=kwargs.pop("max_tasks", 100), **kwargs)
    return [f"{i.field}: {i.message}" for i in issues]


def test_a_cycle_is_refused_with_its_path() -> None:
    d = definition({"id": "a", "kind": "noop", "depends_on": ["c"]}, {"id": "b", "kind": "noop", "depends_on": ["a"]},
                   {"id": "c", "kind": "noop", "depends_on": ["b"]}, {"id": "d", "kind": "noop"})  # fmt: skip
    assert messages(d) == ["tasks: the dependencies form a cycle: a -> c -> b -> a"]


def test_every_error_is_reported_at_once() -> None:
    d = definition(
        {"id": "a", "kind": "noop", "depends_on": ["ghost"]},
        {"id": "a", "kind": "noop"},
        {"id": "b", "kind": "teleport"},
        {"id": "c", "kind": "http", "params": {"url": "file:///etc/passwd"}},
        {"id": "d", "kind": "sql", "params": {"sql": "DROP TABLE x"}},
        {"id": "e", "kind": "sql", "params": {"query": "nope"}},
        {"id": "f", "kind": "noop", "params": {"x": "{{ tasks.g.output.y }}"}},
        {"id": "g", "kind": "sleep", "params": {"seconds": "soon"}},
    )
    found = messages(d, queries={"series"})
    assert found == [
        "tasks[1].id: duplicate task id 'a'",
        "tasks[0].depends_on: task 'a' depends on unknown task 'ghost'",
        "tasks[2].kind: unknown kind 'teleport'; known: ai, http, sql, emit, noop, sleep",
        "tasks[3].params.url: only http and https URLs are allowed",
        "tasks[4].params: SQL text is refused: name a query of contracts/workflow/queries.yaml",
        "tasks[5].params.query: no query named 'nope' is declared",
        "tasks[7].params: Expected `float`, got `str` - at `params.seconds`",
        "tasks[6].params: template references task 'g', which is not upstream of this task",
    ]


def test_templates_may_reference_upstream_tasks_only() -> None:
    d = definition(
        {"id": "a", "kind": "noop"},
        {"id": "b", "kind": "noop", "depends_on": ["a"], "params": {"v": "{{ tasks.a.output.x }}"}},
        {"id": "c", "kind": "noop", "depends_on": ["b"], "params": {"v": "{{ tasks.a.output.x }}"},
         "when": "{{ tasks.b.output.v }}"},
        {"id": "d", "kind": "noop", "params": {"v": "{{ tasks.c.output.v }}"}},
        {"id": "e", "kind": "noop", "depends_on": ["a"],
         "compensate": {"kind": "noop", "params": {"undo": "{{ tasks.e.output.id }}"}}},
    )  # fmt: skip
    assert messages(d) == ["tasks[3].params: template references task 'c', which is not upstream of this task"]


def test_limits() -> None:
    d = definition(*({"id": f"t{i}", "kind": "noop"} for i in range(5)))
    assert messages(d, max_tasks=4) == ["tasks: 5 tasks is over the limit of 4"]


def test_topological_order_puts_dependencies_first() -> None:
    graph = {"d": ["b", "c"], "b": ["a"], "c": ["a"], "a": []}
    order = topological_order(graph)
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("c") < order.index("d")
    assert find_cycle(graph) is None


def test_render_keeps_types_for_whole_templates_and_text_inside_strings() -> None:
    context = {"inputs": {"n": 3, "who": "ada"}, "tasks": {"fetch": {"body": {"items": [{"id": 7}]}}}}
    value = {"n": "{{ inputs.n }}", "id": "{{tasks.fetch.output.body.items.0.id}}",
             "msg": "hi {{ inputs.who }} #{{ inputs.n }}", "obj": "{{ tasks.fetch.output.body }}"}  # fmt: skip
    assert render(value, context) == {"n": 3, "id": 7, "msg": "hi ada #3", "obj": {"items": [{"id": 7}]}}
    with pytest.raises(TemplateError, match=r"tasks\.fetch\.output\.body\.missing does not exist"):
        render("{{ tasks.fetch.output.body.missing }}", context)
    with pytest.raises(TemplateError, match="bad template"):
        render("{{ __import__('os').system('x') }}", context)


def test_when_truthiness() -> None:
    assert [is_truthy(v) for v in (True, 1, "yes", [0], {"a": 1})] == [True] * 5
    assert [is_truthy(v) for v in (False, 0, "", "false", "0", None, [], {})] == [False] * 8


def test_backoff_grows_is_capped_and_jittered() -> None:
    retry = {"initial_backoff_s": 1.0, "max_backoff_s": 5.0, "multiplier": 2.0, "jitter": 0.0}
    assert [backoff_seconds(retry, n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    jittered = [backoff_seconds({**retry, "jitter": 0.5}, 2, random.Random(i)) for i in range(20)]
    assert all(1.0 <= w <= 2.0 for w in jittered)
    assert len(set(jittered)) > 1
