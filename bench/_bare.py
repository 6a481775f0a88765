"""The baseline server: a bare Litestar app whose one endpoint returns the body's length."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, get, post


@post("/bare", status_code=200, request_max_body_size=None)
async def body_length(request: Request[Any, Any, Any]) -> dict[str, int]:
    """Read the whole body and return its length: what /hash does, minus hashing and the platform."""
    return {"size_bytes": len(await request.body())}


@get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar([body_length, live])
