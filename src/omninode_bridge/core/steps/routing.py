"""Calls to the services of the routing subcontract (OnexTree intelligence), with retries and a breaker."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog

from omninode_bridge.core.breaker import CircuitBreaker
from omninode_bridge.core.safe_errors import describe_error
from omninode_bridge.core.steps.specs import RoutedServiceSpec

__all__ = ["RoutedService", "ServiceUnavailableError"]

log = structlog.get_logger(__name__)


class ServiceUnavailableError(RuntimeError):
    """The routed service is not configured, its breaker is open, or every attempt failed.

    Its message is stored with the workflow step, so it names the service and classifies the failure
    (``OnexTree unavailable: httpx.ConnectError``), never an HTTP library's text.
    """


class RoutedService:
    """One service of the routing subcontract.

    Attempts are bounded by the service's ``timeout_ms`` each and ``retries`` extra tries with a linear
    backoff; the caller's step timeout bounds the whole. Connection failures, timeouts and 5xx answers
    count towards the breaker; while it is open calls fail at once.

    Args:
        spec: The service's routing entry.
        client: The shared HTTP client (owned by the module's lifespan).
    """

    def __init__(self, spec: RoutedServiceSpec, client: httpx.AsyncClient) -> None:
        self.spec = spec
        self.client = client
        self.breaker = CircuitBreaker(
            f"routing:{spec.name}",
            failure_threshold=spec.circuit_breaker.failure_threshold,
            reset_seconds=spec.circuit_breaker.reset_timeout_ms / 1000,
            half_open_calls=1,
        )

    @property
    def configured(self) -> bool:
        """Whether the service has a URL (an unset one disables it)."""
        return bool(self.spec.url)

    async def call(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST ``payload`` to the service's path and return its JSON object.

        Raises:
            ServiceUnavailableError: Not configured, breaker open, or all attempts failed.
        """
        if not self.spec.url:
            raise ServiceUnavailableError(f"{self.spec.name} is not configured")
        url = self.spec.url.rstrip("/") + self.spec.path
        last_error = "no attempt made"
        for attempt in range(self.spec.retries + 1):
            try:
                self.breaker.before_call()
            except RuntimeError as exc:
                raise ServiceUnavailableError(f"{self.spec.name} unavailable: {describe_error(exc)}") from exc
            try:
                response = await self.client.post(url, json=payload, timeout=self.spec.timeout_ms / 1000)
            except (httpx.HTTPError, OSError) as exc:
                self.breaker.record_failure()
                last_error = describe_error(exc)
            else:
                if response.status_code >= 500:
                    self.breaker.record_failure()
                    last_error = f"HTTP {response.status_code}"
                else:
                    self.breaker.record_success()
                    response.raise_for_status()
                    body = response.json()
                    return body if isinstance(body, dict) else {"result": body}
            if attempt < self.spec.retries:
                await asyncio.sleep(self.spec.retry_backoff_ms * (attempt + 1) / 1000)
        log.warning("routed service failed", service=self.spec.name, error=last_error)
        raise ServiceUnavailableError(f"{self.spec.name} unavailable: {last_error}")
