"""Trace context of a request (continued or new) and the log noise we drop."""

from __future__ import annotations

import json

import pytest
import structlog
from opentelemetry import trace

from omninode_bridge.core.observability import configure_logging, request_trace_context
from omninode_bridge.settings import ObservabilitySettings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


PARENT_SPAN_ID = "00f067aa0ba902b7"


def _span_context(traceparent: str | None) -> trace.SpanContext:
    span = trace.get_current_span(request_trace_context(traceparent))
    assert not span.is_recording()
    return span.get_span_context()


def test_a_callers_trace_is_continued_with_a_new_span() -> None:
    context = _span_context(f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01")
    assert format(context.trace_id, "032x") == TRACE_ID
    assert format(context.span_id, "016x") != PARENT_SPAN_ID
    assert context.trace_flags.sampled  # the caller's sampling decision is passed on downstream
    assert not context.is_remote


def test_without_a_valid_traceparent_each_request_starts_a_trace() -> None:
    first, second = _span_context(None), _span_context("00-not-a-trace-context-01")
    assert first.is_valid
    assert second.is_valid
    assert first.trace_id != second.trace_id
    assert not first.trace_flags.sampled


def test_fast_streams_auto_create_warning_is_dropped_and_others_kept(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(ObservabilitySettings(log_level="INFO"))
    kafka_log = structlog.get_logger("omninode_bridge.kafka")
    kafka_log.warning("Auto create topics is disabled. Make sure the topics exist.")
    kafka_log.warning("consumer rebalanced")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["event"] for line in lines] == ["consumer rebalanced"]
