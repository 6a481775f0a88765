"""The TLS context of the app's outgoing HTTP clients, built once per process.

Each ``httpx.AsyncClient`` builds its own ``ssl.SSLContext`` unless given one, and building one loads the CA
bundle: about 60 ms of CPU. The app makes four clients at start-up (model upstreams, the stamping services, the
registry's health checks, workflow ``http`` tasks), so they share one context (an ``SSLContext`` may be used by
many connections and clients at once).
"""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ["client_tls_context"]


@functools.cache
def client_tls_context(*, trust_env: bool = True) -> ssl.SSLContext:
    """The verifying TLS context httpx would build for a client, made once per ``trust_env``.

    Args:
        trust_env: Whether ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` apply, as httpx's own ``trust_env``.
    """
    return httpx.create_ssl_context(trust_env=trust_env)
