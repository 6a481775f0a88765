"""``server.json`` of the official MCP Registry (schema 2025-12-11) and the v0 API's answers.

Validated here: ``name`` is reverse-DNS with exactly one ``/`` (``io.github.user/server``), ``description`` is
1-100 characters, ``version`` is one exact version (not ``latest``, not a range), ``packages[]`` and ``remotes[]``
have their required fields. Fields this schema does not list are kept as sent (the document is stored whole).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from omninode_bridge.core.inputs import anchored, text

__all__ = [
    "OFFICIAL_META",
    "ListMetadata",
    "Package",
    "Remote",
    "ServerJson",
    "ServerList",
    "ServerResponse",
    "exact_version_problem",
    "official_meta",
]

OFFICIAL_META = "io.modelcontextprotocol.registry/official"
ServerName = Annotated[
    str,
    msgspec.Meta(
        pattern=anchored(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+"),
        min_length=3,
        max_length=200,
        description="Reverse-DNS namespace and a name, with exactly one '/': io.github.user/weather.",
    ),
]
Url = Annotated[str, msgspec.Meta(pattern=anchored(r"https?://[^\s\x00-\x1f\x7f]{1,2040}"), max_length=2048)]
Label = Annotated[str, text(min_length=1, max_length=255)]


class Transport(msgspec.Struct):
    """How a package is spoken to: ``stdio``, ``streamable-http`` or ``sse`` (the latter two with a url)."""

    type: Literal["stdio", "streamable-http", "sse"]
    url: Annotated[str, text(max_length=2048)] | None = None


class Package(msgspec.Struct):
    """A package the server is installed from (npm, pypi, oci, nuget, mcpb)."""

    registry_type: Label = msgspec.field(name="registryType")
    identifier: Label
    transport: Transport
    version: Label | None = None
    registry_base_url: Url | None = msgspec.field(default=None, name="registryBaseUrl")


class Remote(msgspec.Struct):
    """A hosted endpoint of the server."""

    type: Literal["streamable-http", "sse"]
    url: Url


class Repository(msgspec.Struct):
    """Where the source is."""

    url: Url
    source: Label
    id: Label | None = None
    subfolder: Annotated[str, text(max_length=1024)] | None = None


class ServerJson(msgspec.Struct):
    """A ``server.json`` as published."""

    name: ServerName
    description: Annotated[str, text(min_length=1, max_length=100)]
    version: Annotated[str, text(min_length=1, max_length=255, description="One exact version, not a range.")]
    schema: Annotated[str, text(max_length=2048)] | None = msgspec.field(default=None, name="$schema")
    title: Annotated[str, text(min_length=1, max_length=100)] | None = None
    website_url: Url | None = msgspec.field(default=None, name="websiteUrl")
    repository: Repository | None = None
    packages: Annotated[list[Package], msgspec.Meta(max_length=64)] = msgspec.field(default_factory=list)
    remotes: Annotated[list[Remote], msgspec.Meta(max_length=64)] = msgspec.field(default_factory=list)


def exact_version_problem(version: str) -> str | None:
    """Why ``version`` is not one exact version (``latest``, a range, a wildcard), or None."""
    if version.lower() == "latest":
        return "'latest' is reserved: publish an exact version"
    if any(mark in version for mark in ("^", "~", ">", "<", "*", "||", " ")) or version.lower().endswith(".x"):
        return "must be one exact version, not a range"
    return None


class ServerResponse(msgspec.Struct):
    """One published version: the document and the registry's metadata (``_meta``)."""

    server: dict[str, Any]
    meta: dict[str, Any] = msgspec.field(name="_meta")


class ListMetadata(msgspec.Struct):
    """Paging of a list."""

    count: int
    next_cursor: str | None = msgspec.field(default=None, name="nextCursor")


class ServerList(msgspec.Struct):
    """``GET /v0/servers``."""

    servers: list[ServerResponse]
    metadata: ListMetadata


def official_meta(*, published_at: dt.datetime, updated_at: dt.datetime, is_latest: bool) -> dict[str, Any]:
    """The registry's own ``_meta`` entry."""
    return {OFFICIAL_META: {"status": "active", "publishedAt": published_at.isoformat(),
                            "updatedAt": updated_at.isoformat(), "isLatest": is_latest}}  # fmt: skip
