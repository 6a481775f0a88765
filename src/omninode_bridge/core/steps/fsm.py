"""Finite state machines declared in node contracts (the FSM subcontract).

The contract lists states and their allowed transitions; the machine refuses anything else, so changing
the contract changes what a node may do.
"""

from __future__ import annotations

import msgspec

__all__ = ["FsmSpec", "IllegalTransitionError", "StateMachine", "StateSpec"]


class StateSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One state: where it may go next, and whether it ends the machine."""

    name: str
    transitions: list[str] = []
    terminal: bool = False


class FsmSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The FSM subcontract: the initial state and every state with its transitions."""

    initial_state: str
    states: list[StateSpec]


class IllegalTransitionError(RuntimeError):
    """A transition the contract does not allow was attempted."""

    def __init__(self, machine: str, source: str, target: str, allowed: list[str]) -> None:
        super().__init__(
            f"{machine}: illegal transition {source} -> {target} (allowed: {', '.join(allowed) or 'none'})"
        )
        self.source = source
        self.target = target


class StateMachine:
    """Validates a contract FSM once, then checks transitions against it.

    Args:
        name: The owning node, for error messages.
        spec: The FSM subcontract.

    Raises:
        ValueError: The spec names an unknown state, has duplicates, or a terminal state with transitions.
    """

    def __init__(self, name: str, spec: FsmSpec) -> None:
        self.name = name
        self.spec = spec
        self._states = {state.name: state for state in spec.states}
        if len(self._states) != len(spec.states):
            raise ValueError(f"{name}: duplicate FSM state names")
        if spec.initial_state not in self._states:
            raise ValueError(f"{name}: initial state {spec.initial_state!r} is not a declared state")
        for state in spec.states:
            unknown = [target for target in state.transitions if target not in self._states]
            if unknown:
                raise ValueError(f"{name}: state {state.name} transitions to undeclared {unknown}")
            if state.terminal and state.transitions:
                raise ValueError(f"{name}: terminal state {state.name} cannot have transitions")

    @property
    def initial(self) -> str:
        """The state every run starts in."""
        return self.spec.initial_state

    def has_state(self, name: str) -> bool:
        """Whether ``name`` is a declared state."""
        return name in self._states

    def is_terminal(self, name: str) -> bool:
        """Whether ``name`` ends the machine."""
        return self._states[name].terminal

    def check(self, source: str, target: str) -> None:
        """Allow ``source -> target`` or raise.

        Raises:
            IllegalTransitionError: The contract does not list ``target`` among ``source``'s transitions.
        """
        allowed = self._states[source].transitions if source in self._states else []
        if target not in allowed:
            raise IllegalTransitionError(self.name, source, target, allowed)
