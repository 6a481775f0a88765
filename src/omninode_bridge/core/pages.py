"""The app's own HTML pages (the hooks and workflow live views, the models dashboard): one self-contained
file each, served with one strict policy.

A page holds no data and loads nothing from elsewhere: its script and style are inline, it talks only to
this origin, and it cannot be framed. The page asks for the API key (a form, or ``#key=...`` in the URL,
which never reaches the server) and calls the API with it, so the page itself needs no authentication.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from litestar import MediaType, Response

__all__ = ["PAGE_HEADERS", "page_response"]

#: Inline script and style only, requests to this origin only, never framed.
PAGE_HEADERS: dict[str, str] = {
    "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@cache
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def page_response(path: Path) -> Response[str]:
    """The HTML file at ``path`` (read once per process) with :data:`PAGE_HEADERS`."""
    return Response(_read(path), media_type=MediaType.HTML, headers=PAGE_HEADERS)
