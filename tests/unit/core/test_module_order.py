"""Module start order: declared requirements, not list order; unknown names and cycles refused."""

from __future__ import annotations

import pytest

from omninode_bridge.app import create_app
from omninode_bridge.core.module import Module, NotStartedError, Started, start_order
from omninode_bridge.settings import Settings, load_settings


def _names(modules: list[Module]) -> list[str]:
    return [m.name for m in modules]


def test_a_module_starts_after_the_ones_it_requires() -> None:
    modules = [Module(name="a", requires=["c"]), Module(name="b"), Module(name="c", requires=["b"])]
    assert _names(start_order(modules)) == ["b", "c", "a"]


def test_without_requirements_the_given_order_stays() -> None:
    assert _names(start_order([Module(name="x"), Module(name="y"), Module(name="z")])) == ["x", "y", "z"]


def test_an_unknown_requirement_is_refused() -> None:
    with pytest.raises(ValueError, match="'a' requires unknown module"):
        start_order([Module(name="a", requires=["missing"])])


def test_a_cycle_is_refused_and_named() -> None:
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        start_order([Module(name="a", requires=["b"]), Module(name="b", requires=["a"])])


def test_two_modules_of_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="two modules are named 'a'"):
        start_order([Module(name="a"), Module(name="a")])


def _offline() -> Settings:
    # Addresses only: create_app connects to nothing.
    return load_settings(
        {
            "OMNINODE_DATABASE_URL": "postgresql+asyncpg://u:p@127.0.0.1:9/db",
            "OMNINODE_REDIS_URL": "redis://127.0.0.1:9/0",
            "OMNINODE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        },
        env_file=None,
    )


def test_create_app_refuses_an_unknown_requirement_before_connecting() -> None:
    with pytest.raises(ValueError, match="requires unknown module"):
        create_app(_offline(), modules=[Module(name="lonely", requires=["nowhere"])])


def test_create_app_builds_every_module_without_connecting() -> None:
    app = create_app(_offline())
    paths = {route.path for route in app.routes}
    assert {
        "/health",
        "/hooks",
        "/stamp",
        "/events",
        "/codegen/analyze",
        "/orchestrator/workflows/{workflow_id:uuid}",
    } <= paths


def test_state_read_before_start_names_what_is_missing() -> None:
    slot: Started[int] = Started("the answer")
    with pytest.raises(NotStartedError, match="the answer is not available"):
        slot.get()
    slot.set(42)
    assert slot.get() == 42
