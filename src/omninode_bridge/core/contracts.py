"""Node contracts: YAML files whose subcontracts are pulled in by ``$ref``, decoded into msgspec Structs.

A contract drives behaviour (FSM states, step timeouts, aggregation windows), so it is validated as a whole
at start-up: an unknown key, a wrong type or a missing ``$ref`` target is an error that names the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

__all__ = ["ContractError", "ContractVersion", "contracts_dir", "load_contract", "load_yaml"]

#: libyaml's safe loader where PyYAML was built with it, else the pure-Python one (the same documents either way).
#: Every app start reads the contracts: all twelve files took 67 ms with the pure-Python parser, 7.7 ms with
#: libyaml's; a test suite starts its app a few hundred times.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """Parse YAML like ``yaml.safe_load`` (plain data only, never objects), with libyaml's parser when present.

    Raises:
        yaml.YAMLError: The text is not valid YAML.
    """
    return yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)


T = TypeVar("T")

_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


class ContractVersion(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``contract_version: {major, minor, patch}`` of a node contract."""

    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


class ContractError(ValueError):
    """A contract file is missing, malformed, or does not match its schema."""


def _resolve(node: Any, base: Path, variables: Mapping[str, str | None], seen: tuple[Path, ...]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"$ref"}:
            target = (base / str(node["$ref"])).resolve()
            if target in seen:
                raise ContractError(f"circular $ref to {target}")
            return _resolve(_read(target), target.parent, variables, (*seen, target))
        return {key: _resolve(value, base, variables, seen) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(item, base, variables, seen) for item in node]
    if isinstance(node, str) and "${" in node:
        return _substitute(node, variables)
    return node


def _substitute(text: str, variables: Mapping[str, str | None]) -> str | None:
    """Expand ``${NAME}`` and ``${NAME:-default}``; a value that is only an unset variable becomes null."""

    def value_of(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = variables.get(name) if name in variables else os.environ.get(name)
        return value if value else (default or "")

    expanded = _VARIABLE.sub(value_of, text)
    if expanded == "" and _VARIABLE.fullmatch(text):
        return None
    return expanded


def _read(path: Path) -> Any:
    try:
        return load_yaml(path.read_text())
    except FileNotFoundError as exc:
        raise ContractError(f"contract file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: invalid YAML: {exc}") from exc


def load_contract(path: Path, schema: type[T], variables: Mapping[str, str | None] | None = None) -> T:
    """Load ``path``, inline its ``$ref`` subcontracts (paths relative to the referring file) and validate.

    Args:
        path: The contract's main file.
        schema: The msgspec Struct type the resolved document must match.
        variables: Values for ``${NAME}`` references; names not given are read from the environment.

    Returns:
        The decoded contract.

    Raises:
        ContractError: The file or a subcontract is missing or malformed, or the document does not match.
    """
    path = path.resolve()
    document = _resolve(_read(path), path.parent, variables or {}, (path,))
    try:
        return msgspec.convert(document, schema)
    except msgspec.ValidationError as exc:
        raise ContractError(f"{path}: {exc}") from exc


def contracts_dir(configured: str | None) -> Path:
    """The contracts directory: ``configured`` (``server.contracts_dir``) or the repository's ``contracts/``."""
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "contracts"
