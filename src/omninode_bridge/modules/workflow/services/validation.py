"""Checks of a workflow definition at submit: every error at once, each naming its field.

Refused: duplicate task ids, an unknown dependency (named), a cycle (its path, ``a -> b -> c -> a``), an unknown
kind or bad parameters, SQL text instead of a named query, a template that references a task that is not
upstream, and definitions over the limits.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from omninode_bridge.modules.workflow import schemas
from omninode_bridge.modules.workflow.services.templates import TemplateError, references

__all__ = ["KIND_PARAMS", "Issue", "find_cycle", "topological_order", "validate_definition"]

KIND_PARAMS: Mapping[str, type[msgspec.Struct] | None] = {
    "ai": schemas.AiParams,
    "http": schemas.HttpParams,
    "sql": schemas.SqlParams,
    "emit": schemas.EmitParams,
    "noop": None,
    "sleep": schemas.SleepParams,
}


@dataclass(frozen=True, slots=True)
class Issue:
    """One thing wrong with a definition: where (a JSON path such as ``tasks[2].depends_on``) and what."""

    field: str
    message: str


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle of ``graph`` (task -> its dependencies) as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph:
        if state.get(root):
            continue
        path: list[str] = [root]
        state[root] = 1
        iterators = [iter(graph.get(root, ()))]
        while iterators:
            nxt = next(iterators[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iterators.pop()
                continue
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iterators.append(iter(graph.get(nxt, ())))
    return None


def topological_order(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """The tasks of an acyclic ``graph`` (task -> its dependencies), dependencies first, stable by position."""
    remaining = {task: len(set(deps)) for task, deps in graph.items()}
    dependents: dict[str, list[str]] = {task: [] for task in graph}
    for task, deps in graph.items():
        for dep in set(deps):
            dependents[dep].append(task)
    order = [task for task, count in remaining.items() if count == 0]
    for task in order:  # grows while iterating: Kahn's algorithm
        for child in dependents[task]:
            remaining[child] -= 1
            if remaining[child] == 0:
                order.append(child)
    return order


def _ancestors(graph: Mapping[str, Sequence[str]], order: Sequence[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for task in order:
        upstream: set[str] = set()
        for dep in graph[task]:
            upstream.add(dep)
            upstream |= found[dep]
        found[task] = upstream
    return found


def _check_params(kind: str, params: dict[str, Any], where: str, queries: Collection[str] | None) -> list[Issue]:
    if kind not in KIND_PARAMS:
        return [Issue(f"{where}.kind", f"unknown kind {kind!r}; known: {', '.join(KIND_PARAMS)}")]
    if kind == "sql" and ("sql" in params or "statement" in params):
        return [Issue(f"{where}.params", "SQL text is refused: name a query of contracts/workflow/queries.yaml")]
    struct = KIND_PARAMS[kind]
    if struct is None:
        return []
    try:
        converted = msgspec.convert(params, struct)
    except msgspec.ValidationError as exc:
        return [Issue(f"{where}.params", str(exc).replace("`$", "`params"))]
    issues = []
    if isinstance(converted, schemas.SqlParams) and queries is not None and converted.query not in queries:
        issues.append(Issue(f"{where}.params.query", f"no query named {converted.query!r} is declared"))
    if isinstance(converted, schemas.HttpParams) and "{{" not in converted.url.split("://", 1)[0]:
        scheme = converted.url.split("://", 1)[0].lower() if "://" in converted.url else ""
        if scheme not in ("http", "https"):
            issues.append(Issue(f"{where}.params.url", "only http and https URLs are allowed"))
    return issues


def _check_templates(value: Any, allowed: set[str], where: str) -> list[Issue]:
    try:
        named = references(value)
    except TemplateError as exc:
        return [Issue(where, str(exc))]
    return [
        Issue(where, f"template references task {ref!r}, which is not upstream of this task")
        for ref in sorted(named - allowed)
    ]


def validate_definition(
    definition: schemas.WorkflowDefinition, *, max_tasks: int, queries: Collection[str] | None = None
) -> tuple[list[Issue], list[str]]:
    """Check ``definition``; returns the issues (empty when it is valid) and the tasks in topological order.

    Args:
        definition: The decoded definition.
        max_tasks: Most tasks allowed.
        queries: Names of the declared SQL queries (None: not checked).
    """
    issues: list[Issue] = []
    if len(definition.tasks) > max_tasks:
        issues.append(Issue("tasks", f"{len(definition.tasks)} tasks is over the limit of {max_tasks}"))
    graph: dict[str, list[str]] = {}
    for i, task in enumerate(definition.tasks):
        if task.id in graph:
            issues.append(Issue(f"tasks[{i}].id", f"duplicate task id {task.id!r}"))
            continue
        graph[task.id] = list(dict.fromkeys(task.depends_on))
    for i, task in enumerate(definition.tasks):
        where = f"tasks[{i}]"
        for dep in task.depends_on:
            if dep not in graph:
                issues.append(Issue(f"{where}.depends_on", f"task {task.id!r} depends on unknown task {dep!r}"))
            elif dep == task.id:
                issues.append(Issue(f"{where}.depends_on", f"task {task.id!r} depends on itself"))
        issues += _check_params(task.kind, task.params, where, queries)
        if task.compensate is not None:
            issues += _check_params(task.compensate.kind, task.compensate.params, f"{where}.compensate", queries)
    known = {task: [d for d in deps if d in graph and d != task] for task, deps in graph.items()}
    cycle = find_cycle(known)
    if cycle is not None:
        issues.append(Issue("tasks", f"the dependencies form a cycle: {' -> '.join(cycle)}"))
        return issues, []
    order = topological_order(known)
    upstream = _ancestors(known, order)
    checked: set[str] = set()
    for i, task in enumerate(definition.tasks):
        if task.id in checked:  # a duplicate, reported above
            continue
        checked.add(task.id)
        issues += _check_templates(task.params, upstream[task.id], f"tasks[{i}].params")
        if task.when is not None:
            issues += _check_templates(task.when, upstream[task.id], f"tasks[{i}].when")
        if task.compensate is not None:
            own = upstream[task.id] | {task.id}
            issues += _check_templates(task.compensate.params, own, f"tasks[{i}].compensate.params")
    return issues, order
