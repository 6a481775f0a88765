"""The model catalog contract (``contracts/models.yaml``): models, their prices and limits, and the quality
checks of each task type. Loaded and validated at start-up: a bad entry stops the app with a message naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from omninode_bridge.core.contracts import ContractError, contracts_dir, load_contract

__all__ = [
    "CheckSpec",
    "ModelSpec",
    "ModelsContract",
    "Price",
    "TaskTypeSpec",
    "load_models",
    "models_path",
]

_ID = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_ENV = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"

ModelId = Annotated[str, msgspec.Meta(pattern=_ID, description="lower-case letters, digits, '.', '_', '-'")]
TaskType = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class Price(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """US dollars per million tokens."""

    input_per_million: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    output_per_million: Annotated[float, msgspec.Meta(ge=0)] = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The cost of one call."""
        return (input_tokens * self.input_per_million + output_tokens * self.output_per_million) / 1_000_000


class ModelSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One model behind an OpenAI-compatible endpoint.

    Attributes:
        id: Our name of the model (what clients ask for and statistics are kept under).
        base_url: The endpoint's base (``{base_url}/chat/completions`` is called), e.g. ``http://host:11434/v1``.
        api_key_env: The environment variable holding its API key (never the key itself); None: no key.
        model: The upstream's model name.
        price: Per million input and output tokens.
        context_window: Tokens the model accepts in total.
        task_types: The task types it may serve.
        max_concurrency: Calls in flight at once, across every process.
        timeout_seconds: Budget of one call.
    """

    id: ModelId
    base_url: str
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    task_types: Annotated[list[TaskType], msgspec.Meta(min_length=1)]
    api_key_env: Annotated[str, msgspec.Meta(pattern=_ENV)] | None = None
    price: Price = Price()
    context_window: Annotated[int, msgspec.Meta(ge=1)] = 8192
    max_concurrency: Annotated[int, msgspec.Meta(ge=1)] = 8
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0


class CheckSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One quality check of a task type's answers.

    ``kind``: ``non_empty``; ``min_length`` / ``max_length`` (characters, ``value``); ``json`` (valid JSON, and
    matching the request's JSON schema when ``response_format`` gives one; applies only when the request asks
    for JSON); ``required_regex`` / ``forbidden_regex`` (``pattern``, searched in the answer); ``judge``
    (``model``: a catalog model asked to grade the answer to the request from 0 to 1; off unless a task type
    lists it; its cost is added to the execution's).
    """

    kind: Literal["non_empty", "min_length", "max_length", "json", "required_regex", "forbidden_regex", "judge"]
    value: Annotated[int, msgspec.Meta(ge=0)] | None = None
    pattern: str | None = None
    model: ModelId | None = None
    weight: Annotated[float, msgspec.Meta(gt=0)] = 1.0

    @property
    def name(self) -> str:
        """How the check is named in a response's per-check results."""
        if self.model is not None:
            return f"{self.kind}:{self.model}"
        if self.value is not None:
            return f"{self.kind}:{self.value}"
        return f"{self.kind}:{self.pattern}" if self.pattern is not None else self.kind


class TaskTypeSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A task type and how its answers are scored."""

    description: str = ""
    checks: list[CheckSpec] = msgspec.field(default_factory=lambda: [CheckSpec(kind="non_empty")])


class ModelsContract(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The whole catalog. An empty ``models`` list is valid (``/execute`` then answers 503)."""

    task_types: dict[TaskType, TaskTypeSpec]
    models: list[ModelSpec] = msgspec.field(default_factory=list)

    def model(self, model_id: str) -> ModelSpec | None:
        """The model with this id, if any."""
        return next((m for m in self.models if m.id == model_id), None)

    def serving(self, task_type: str) -> list[ModelSpec]:
        """Models that may serve ``task_type``, in catalog order."""
        return [m for m in self.models if task_type in m.task_types]


def models_path(models_file: str | None) -> Path:
    """The catalog file: ``OMNINODE_MODELS_FILE`` or the repository's ``contracts/models.yaml``."""
    return Path(models_file) if models_file else contracts_dir(None) / "models.yaml"


def load_models(models_file: str | None, environ: Mapping[str, str] | None = None) -> ModelsContract:
    """Load and validate the catalog.

    Beyond the schema: model ids are unique, base URLs are http(s), every task type a model serves is
    declared, every regex compiles, and every ``api_key_env`` named is set (a model that cannot authenticate
    is a configuration error, found at start-up rather than on the first request).

    Raises:
        ContractError: The message names the file and the offending entry.
    """
    path = models_path(models_file)
    contract = load_contract(path, ModelsContract, variables={})
    env = os.environ if environ is None else environ
    problems: list[str] = []
    seen: set[str] = set()
    for index, model in enumerate(contract.models):
        where = f"models[{index}] ({model.id})"
        if model.id in seen:
            problems.append(f"{where}: duplicate id")
        seen.add(model.id)
        if not re.match(r"^https?://[^\s/]+", model.base_url):
            problems.append(f"{where}: base_url must be an http:// or https:// URL")
        for task_type in model.task_types:
            if task_type not in contract.task_types:
                problems.append(f"{where}: task type {task_type!r} is not declared under task_types")
        if model.api_key_env is not None and not env.get(model.api_key_env):
            problems.append(f"{where}: environment variable {model.api_key_env} (its API key) is not set")
    for name, spec in contract.task_types.items():
        for index, check in enumerate(spec.checks):
            where = f"task_types.{name}.checks[{index}]"
            if check.kind == "judge" and (check.model is None or check.model not in seen):
                problems.append(f"{where}: judge needs the id of a catalog model (model: ...)")
            if check.kind in ("min_length", "max_length") and check.value is None:
                problems.append(f"{where}: {check.kind} needs a value")
            if check.kind in ("required_regex", "forbidden_regex"):
                if check.pattern is None:
                    problems.append(f"{where}: {check.kind} needs a pattern")
                    continue
                try:
                    re.compile(check.pattern)
                except re.error as exc:
                    problems.append(f"{where}: pattern {check.pattern!r} is invalid: {exc}")
    if problems:
        raise ContractError(f"{path}: " + "; ".join(problems))
    return contract
