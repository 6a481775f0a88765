"""The workflow module's settings group (``OMNINODE_WORKFLOW_*``)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

__all__ = ["CAPPED_KINDS", "WorkflowSettings"]

#: The kinds a task of which holds one of the engine's slots while it runs (``noop`` completes inside its claim).
CAPPED_KINDS = ("ai", "http", "sql", "emit", "sleep")
_CAPS = "OMNINODE_WORKFLOW_KIND_CONCURRENCY"


class WorkflowSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Limits of a definition, the engine's concurrency and leases, the HTTP allow list, the SQL queries."""

    env_prefix: ClassVar[str] = "OMNINODE_WORKFLOW_"

    max_tasks: Annotated[int, msgspec.Meta(ge=1, le=10_000, description="Tasks per workflow definition.")] = 1000
    max_definition_bytes: Annotated[
        int, msgspec.Meta(ge=1024, description="Size of a definition (its JSON encoding).")
    ] = 1_048_576
    max_batch: Annotated[
        int, msgspec.Meta(ge=1, le=10_000, description="Workflows of one bulk submit (POST /workflows/batch).")
    ] = 1000
    max_batch_tasks: Annotated[
        int, msgspec.Meta(ge=1, le=1_000_000, description="Tasks of one bulk submit, all its workflows together.")
    ] = 20_000
    max_output_bytes: Annotated[
        int, msgspec.Meta(ge=256, description="Size of one task's output (JSON); a larger output fails the task.")
    ] = 262_144
    concurrency: Annotated[
        int, msgspec.Meta(ge=1, le=1000, description="Tasks one app process runs at once (all kinds).")
    ] = 32
    kind_concurrency: Annotated[
        str,
        msgspec.Meta(
            description="Per-kind caps within concurrency, as kind=n pairs (comma-separated, e.g. 'ai=4,http=16'): "
            "tasks of that kind one app process runs at once. Kinds not listed share concurrency alone; noop tasks "
            "complete inside their claim and take no slot, so they take no cap."
        ),
    ] = ""
    lease_seconds: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            description="A running task's lease, renewed by its process every third of it; a task whose lease "
            "expired (its process died) is claimed again by any process.",
        ),
    ] = 15.0
    poll_seconds: Annotated[
        float,
        msgspec.Meta(gt=0, description="Polling interval of the engine when no notification woke it (the fallback)."),
    ] = 0.5
    http_allow: Annotated[
        str,
        msgspec.Meta(
            description="Hosts or CIDRs http tasks may reach although they are loopback, private, link-local "
            "or metadata addresses (comma-separated)."
        ),
    ] = ""
    http_max_response_bytes: Annotated[
        int, msgspec.Meta(ge=1024, description="Largest response body an http task reads.")
    ] = 1_048_576
    queries_file: Annotated[
        str | None,
        msgspec.Meta(description="Named SQL queries of sql tasks (YAML); default: contracts/workflow/queries.yaml."),
    ] = None
    engine: Annotated[
        bool, msgspec.Meta(description="Run the engine in this process (off: the API only, others run tasks).")
    ] = True

    def __post_init__(self) -> None:
        self.kind_limits()  # refuse a malformed kind_concurrency at start-up (msgspec names the variable)

    def kind_limits(self) -> dict[str, int]:
        """The caps of ``kind_concurrency`` by kind.

        Raises:
            ValueError: An entry is not ``kind=n``, names a kind that takes slots twice or not at all, or ``n``
                is not 1-1000.
        """
        limits: dict[str, int] = {}
        for entry in (item.strip() for item in self.kind_concurrency.split(",")):
            if not entry:
                continue
            kind, sep, count = (part.strip() for part in entry.partition("="))
            if not sep or kind not in CAPPED_KINDS or kind in limits:
                raise ValueError(f"{_CAPS}: {entry!r}: expected kind=n, once per kind, of {', '.join(CAPPED_KINDS)}")
            if not count.isdigit() or not 1 <= int(count) <= 1000:
                raise ValueError(f"{_CAPS}: {entry!r}: the cap must be a whole number from 1 to 1000")
            limits[kind] = int(count)
        return limits

    def http_allow_list(self) -> list[str]:
        """The entries of ``http_allow``."""
        return [entry.strip() for entry in self.http_allow.split(",") if entry.strip()]
