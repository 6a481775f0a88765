"""The upstream client: OpenAI chat completions (``POST {base_url}/chat/completions``), as spoken by vLLM,
Ollama, llama.cpp's server, LiteLLM's proxy and hosted APIs.

One client per process: plain completions go through its keep-alive HTTP/1.1 pool (:mod:`.http1`), streams
through one ``httpx.AsyncClient``; both pools are shared by every model. API keys come from the
environment variables the catalog names, are sent only in the ``Authorization`` header, and are scrubbed from
any upstream error text we keep.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import msgspec

from omninode_bridge.core.http1 import ConnectionFailed, Endpoint, Http1Pool
from omninode_bridge.core.tls import client_tls_context
from omninode_bridge.modules.metrics.contract import ModelSpec

__all__ = [
    "RETRYABLE",
    "Call",
    "Completion",
    "ErrorClass",
    "UpstreamClient",
    "UpstreamError",
    "estimate_tokens",
]

ErrorClass = Literal[
    "timeout", "server_error", "rate_limited", "context_overflow", "connection", "bad_response", "client_error"
]
#: Failures after which the next candidate model is tried (a 4xx other than 429 / context overflow is the
#: caller's request: another model would refuse it too).
RETRYABLE: frozenset[str] = frozenset(
    {"timeout", "server_error", "rate_limited", "context_overflow", "connection", "bad_response"}
)
_DETAIL_CHARS = 300


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters a token) for upstreams that report no ``usage``."""
    return math.ceil(len(text) / 4) if text else 0


@dataclass(frozen=True, slots=True)
class Call:
    """What is sent upstream for one attempt (the model's name is added per model)."""

    messages: Sequence[Mapping[str, Any]]
    temperature: float | None = None
    max_tokens: int | None = None
    response_format: Mapping[str, Any] | None = None

    def prompt_text(self) -> str:
        """The messages' text, for token estimates."""
        return "\n".join(str(m.get("content") or "") for m in self.messages)


@dataclass(frozen=True, slots=True)
class Completion:
    """A successful call, measured."""

    text: str
    input_tokens: int
    output_tokens: int
    usage_estimated: bool
    latency_ms: float
    ttft_ms: float | None
    finish_reason: str | None


class UpstreamError(Exception):
    """A failed call: its class decides failover; ``detail`` is safe to store and return."""

    def __init__(self, error_class: ErrorClass, detail: str, *, status: int | None = None, latency_ms: float = 0.0):
        super().__init__(detail)
        self.error_class: ErrorClass = error_class
        self.detail = detail
        self.status = status
        self.latency_ms = latency_ms

    @property
    def retryable(self) -> bool:
        """Whether another model may succeed where this one failed."""
        return self.error_class in RETRYABLE


class UpstreamClient:
    """Calls models; one per process.

    Args:
        models: The catalog's models.
        environ: Where the keys are read (``os.environ``); only the variables the catalog names.

    Raises:
        ValueError: A model's API key contains a line break (it would split the request's head).
    """

    def __init__(self, models: Sequence[ModelSpec], environ: Mapping[str, str]) -> None:
        self._keys = {m.id: environ[m.api_key_env] for m in models if m.api_key_env and environ.get(m.api_key_env)}
        self._secrets = sorted(set(self._keys.values()), key=len, reverse=True)
        # Resolved once per model, not per call: the endpoint and the fixed request headers of a plain completion.
        self._plain: dict[str, tuple[Endpoint, bytes]] = {}
        for m in models:
            headers = b"Content-Type: application/json\r\nAccept: application/json\r\n"
            key = self._keys.get(m.id)
            if key:
                if any(c in key for c in "\r\n\0"):
                    raise ValueError(f"the API key of model {m.id} ({m.api_key_env}) contains a line break")
                headers += f"Authorization: Bearer {key}\r\n".encode()
            self._plain[m.id] = (Endpoint.of(_completions_url(m)), headers)
        # Plain completions: the light HTTP/1.1 pool (see .http1 for why). Streams: httpx.
        self._pool = Http1Pool()
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(None), trust_env=False, verify=client_tls_context(trust_env=False),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
        )  # fmt: skip

    async def aclose(self) -> None:
        """Close the connection pools."""
        self._pool.close()
        await self._http.aclose()

    def scrub(self, text: str) -> str:
        """``text`` without any configured API key (upstreams sometimes echo the key they refused)."""
        for secret in self._secrets:
            text = text.replace(secret, "[REDACTED]")
        return text[:_DETAIL_CHARS]

    @staticmethod
    def _body(spec: ModelSpec, call: Call, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": spec.model, "messages": list(call.messages), "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        if call.temperature is not None:
            body["temperature"] = call.temperature
        if call.max_tokens is not None:
            body["max_tokens"] = call.max_tokens
        if call.response_format is not None:
            body["response_format"] = dict(call.response_format)
        return body

    async def complete(self, spec: ModelSpec, call: Call) -> Completion:
        """One non-streamed completion.

        Raises:
            UpstreamError: Timeout, connection failure, an error status or an unreadable answer.
        """
        endpoint, headers = self._plain[spec.id]
        body = _encoder.encode(self._body(spec, call, stream=False))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(spec.timeout_seconds):
                status, raw = await self._pool.post(endpoint, headers, body)
        except TimeoutError:
            raise UpstreamError(
                "timeout", f"no answer within {spec.timeout_seconds} s", latency_ms=_ms(started)
            ) from None
        except ConnectionFailed as exc:
            raise UpstreamError("connection", self.scrub(f"ConnectionFailed: {exc}"), latency_ms=_ms(started)) from None
        latency = _ms(started)
        if status >= 400:
            raise self._status_error(status, raw, latency)
        try:
            document = msgspec.json.decode(raw)
            choice = document["choices"][0]
            text = choice["message"].get("content") or ""
        except (msgspec.DecodeError, KeyError, IndexError, TypeError, AttributeError):
            raise UpstreamError("bad_response", "the answer is not a chat completion", latency_ms=latency) from None
        usage = document.get("usage") if isinstance(document, dict) else None
        tokens = _tokens(usage, call, text)
        return Completion(text, *tokens, latency_ms=latency, ttft_ms=None, finish_reason=choice.get("finish_reason"))

    async def stream(self, spec: ModelSpec, call: Call, on_delta: Callable[[str], Awaitable[None]]) -> Completion:
        """One streamed completion (``stream_options.include_usage``); each text delta goes to ``on_delta`` as
        it arrives. Time to first token is measured to the first non-empty delta.

        Raises:
            UpstreamError: As :meth:`complete`; a failure after deltas were delivered is raised too (the caller
                knows whether it can still fail over).
        """
        headers = {"content-type": "application/json"}
        key = self._keys.get(spec.id)
        if key:
            headers["authorization"] = f"Bearer {key}"
        body = _encoder.encode(self._body(spec, call, stream=True))
        started = time.perf_counter()
        ttft: float | None = None
        parts: list[str] = []
        usage: Any = None
        finish: str | None = None
        try:
            async with (
                asyncio.timeout(spec.timeout_seconds),
                self._http.stream("POST", _completions_url(spec), headers=headers, content=body) as response,
            ):
                if response.status_code >= 400:
                    raise self._status_error(response.status_code, await response.aread(), _ms(started))
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = _decode_chunk(data, started)
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    for choice in chunk.get("choices") or ():
                        delta = (choice.get("delta") or {}).get("content") or ""
                        finish = choice.get("finish_reason") or finish
                        if delta:
                            if ttft is None:
                                ttft = _ms(started)
                            parts.append(delta)
                            await on_delta(delta)
        except TimeoutError:
            raise UpstreamError(
                "timeout", f"no complete answer within {spec.timeout_seconds} s", latency_ms=_ms(started)
            ) from None
        except httpx.HTTPError as exc:
            raise self._connection_error(exc, started) from None
        text = "".join(parts)
        tokens = _tokens(usage, call, text)
        return Completion(text, *tokens, latency_ms=_ms(started), ttft_ms=ttft, finish_reason=finish)

    def _connection_error(self, exc: httpx.HTTPError, started: float) -> UpstreamError:
        # The exception's text names the host and port at most; scrubbed anyway.
        return UpstreamError("connection", self.scrub(f"{type(exc).__name__}: {exc}"), latency_ms=_ms(started))

    def _status_error(self, status: int, raw: bytes, latency: float) -> UpstreamError:
        message = _error_message(raw)
        detail = self.scrub(f"HTTP {status}: {message}" if message else f"HTTP {status}")
        lowered = message.lower()
        error_class: ErrorClass
        if status == 429:
            error_class = "rate_limited"
        elif status >= 500:
            error_class = "server_error"
        elif status in (400, 413) and ("context" in lowered or "too long" in lowered or "maximum" in lowered):
            error_class = "context_overflow"
        else:
            error_class = "client_error"
        return UpstreamError(error_class, detail, status=status, latency_ms=latency)


_encoder = msgspec.json.Encoder()


def _completions_url(spec: ModelSpec) -> str:
    return spec.base_url.rstrip("/") + "/chat/completions"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _decode_chunk(data: str, started: float) -> dict[str, Any]:
    try:
        chunk = msgspec.json.decode(data)
    except msgspec.DecodeError:
        raise UpstreamError("bad_response", "a stream chunk is not JSON", latency_ms=_ms(started)) from None
    if not isinstance(chunk, dict):
        raise UpstreamError("bad_response", "a stream chunk is not an object", latency_ms=_ms(started))
    if isinstance(chunk.get("error"), dict):
        message = str(chunk["error"].get("message") or "error")
        raise UpstreamError("server_error", f"stream error: {message[:200]}", latency_ms=_ms(started))
    return chunk


def _error_message(raw: bytes) -> str:
    """The message of an OpenAI error body (``{"error": {"message": ...}}``), else the start of the text."""
    try:
        document = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw[:200].decode("utf-8", "replace").strip()
    if isinstance(document, dict):
        error = document.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error.get("code") or "")[:200]
        if isinstance(error, str):
            return error[:200]
        detail = document.get("detail")
        if isinstance(detail, str):
            return detail[:200]
    return ""


def _tokens(usage: Any, call: Call, text: str) -> tuple[int, int, bool]:
    """(input, output, estimated): the upstream's ``usage`` when it reports one, else estimates."""
    if isinstance(usage, dict):
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int) and prompt >= 0 and completion >= 0:
            return prompt, completion, False
    return estimate_tokens(call.prompt_text()), estimate_tokens(text), True
