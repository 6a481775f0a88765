"""The service's own HTML pages (the hooks live page, the models dashboard): one file each, no external
assets, and the same response headers.

A page holds no data: its inline script reads the API key from the URL fragment (``#key=...``, which never
reaches the server) or a form, and fetches JSON from this origin only.
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
}


@cache
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def page_response(path: Path) -> Response[str]:
    """The HTML file at ``path`` (read once per process) with :data:`PAGE_HEADERS`."""
    return Response(_read(path), media_type=MediaType.HTML, headers=PAGE_HEADERS)
