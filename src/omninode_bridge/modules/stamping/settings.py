"""The stamping module's settings group (``OMNINODE_STAMP_*``)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from omninode_bridge.core.settings import env_var

__all__ = ["StampingSettings"]


class StampingSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Stamping, its signing keys, and the services its orchestrator may call."""

    env_prefix: ClassVar[str] = "OMNINODE_STAMP_"

    previous_secrets: Annotated[
        str,
        env_var(
            "OMNINODE_STAMP_PREVIOUS_SECRETS",
            "Comma-separated former stamp secrets, still accepted when validating (rotation).",
        ),
    ] = ""
    max_upload_bytes: Annotated[
        int,
        msgspec.Meta(ge=1, description="Largest raw upload that /stamp, /hash and /validate accept (else 413)."),
    ] = 64 * 1024**3
    inline_hash_bytes: Annotated[
        int,
        msgspec.Meta(
            ge=0, description="In-memory inputs up to this size are hashed on the event loop; larger in a thread."
        ),
    ] = 128 * 1024
    hash_threads: Annotated[
        int, msgspec.Meta(ge=0, description="blake3 max_threads for large inputs (0: one per core).")
    ] = 0
    stamped_content_max_bytes: Annotated[
        int,
        msgspec.Meta(ge=0, description="Raw text uploads up to this size come back stamped; larger ones do not."),
    ] = 10 * 1024 * 1024
    onextree_url: Annotated[
        str | None,
        env_var(
            "OMNINODE_ONEXTREE_URL", "OnexTree intelligence service; the optional workflow step is skipped if unset."
        ),
    ] = None
