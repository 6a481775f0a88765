"""The platform module: health probes, API keys, the audit log, authentication and rate limits.

Other modules use :func:`require_scope` and :func:`principal_of` to protect their endpoints.
"""

from __future__ import annotations

from omninode_bridge.core.module import Module
from omninode_bridge.platform.controllers import (
    API_KEY_SECURITY,
    AUTH_RESPONSES,
    PUBLIC_RESPONSES,
    AdminController,
    HealthController,
)
from omninode_bridge.platform.schemas import Principal
from omninode_bridge.platform.security import (
    OPTIONAL_AUTH,
    PUBLIC_PATH_PREFIXES,
    AuthCache,
    SecurityMiddleware,
    SlidingWindowLimiter,
    UnmatchedRouteLimits,
    principal_of,
    principal_or_none,
    require_namespace,
    require_scope,
)
from omninode_bridge.platform.services import ApiKeyService, AuditService, parse_key_specs, record_audit

__all__ = [
    "API_KEY_SECURITY",
    "AUTH_RESPONSES",
    "MODULE",
    "OPTIONAL_AUTH",
    "PUBLIC_PATH_PREFIXES",
    "PUBLIC_RESPONSES",
    "ApiKeyService",
    "AuditService",
    "AuthCache",
    "Principal",
    "SecurityMiddleware",
    "SlidingWindowLimiter",
    "UnmatchedRouteLimits",
    "parse_key_specs",
    "principal_of",
    "principal_or_none",
    "record_audit",
    "require_namespace",
    "require_scope",
]

MODULE = Module(name="platform", route_handlers=[HealthController, AdminController])
