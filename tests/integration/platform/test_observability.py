"""Request trace context (continued from a caller's ``traceparent`` or new), request spans only when an
exporter is configured, and the log noise we drop."""

from __future__ import annotations

from litestar.plugins.opentelemetry import OpenTelemetryPlugin

from omninode_bridge.app import create_app
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.settings import Settings
from tests.integration.conftest import make_settings


def test_request_spans_are_recorded_only_with_an_exporter(settings: Settings, stack: EmbeddedStack) -> None:
    # The default app first: it installs the process's tracer provider without an exporter.
    without = create_app(settings)
    with_exporter = create_app(make_settings(stack, observability={"otlp_endpoint": "http://127.0.0.1:4318"}))
    assert not any(isinstance(plugin, OpenTelemetryPlugin) for plugin in without.plugins)
    assert any(isinstance(plugin, OpenTelemetryPlugin) for plugin in with_exporter.plugins)
