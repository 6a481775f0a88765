"""The shared TLS context of outgoing HTTP clients."""

from __future__ import annotations

import ssl

import httpx

from omninode_bridge.core.tls import client_tls_context


def test_the_context_is_built_once_per_trust_env_and_verifies_like_httpxs_own() -> None:
    assert client_tls_context() is client_tls_context()
    assert client_tls_context(trust_env=False) is client_tls_context(trust_env=False)
    assert client_tls_context(trust_env=False) is not client_tls_context()
    context = client_tls_context()
    own = httpx.create_ssl_context()
    assert context.verify_mode == own.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert own.check_hostname
    assert context.minimum_version == own.minimum_version
    assert len(context.get_ca_certs()) == len(own.get_ca_certs()) > 0
