"""A real HTTP server speaking OpenAI's chat-completions protocol, with behaviour programmable per model name:
latency, errors (status and body), usage reported or not, the answer, streaming pace. Our test double of an
external model service (vLLM, Ollama, llama.cpp's server all speak this); served by uvicorn on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from omninode_bridge.embedded import free_port


@dataclass
class Behaviour:
    """How the server answers one model name."""

    answer: str = "Hello from the model."
    latency_s: float = 0.0
    status: int = 200
    error_body: dict[str, Any] | None = None
    usage: bool = True
    chunk_delay_s: float = 0.0
    chunks: int = 4


@dataclass
class FakeOpenAI:
    """The server's state: behaviours by model name, and every request received (with its headers)."""

    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    stream_finished_at: dict[str, float] = field(default_factory=dict)

    def calls(self, model: str) -> int:
        """Requests received for ``model``."""
        return sum(1 for r in self.requests if r["body"].get("model") == model)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
            await _json(send, 404, {"error": {"message": "not found"}})
            return
        request = json.loads(body)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append({"body": request, "headers": headers})
        behaviour = self.behaviours.get(request.get("model"), Behaviour())
        await asyncio.sleep(behaviour.latency_s)
        if behaviour.status != 200:
            await _json(send, behaviour.status, behaviour.error_body or {"error": {"message": "upstream failed"}})
            return
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in request["messages"])
        completion_tokens = len(behaviour.answer.split())
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}  # fmt: skip
        if not request.get("stream"):
            document: dict[str, Any] = {
                "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
                "model": request["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": behaviour.answer},
                             "finish_reason": "stop"}],
            }  # fmt: skip
            if behaviour.usage:
                document["usage"] = usage
            await _json(send, 200, document)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip
        size = max(1, len(behaviour.answer) // behaviour.chunks + 1)
        pieces = [behaviour.answer[i : i + size] for i in range(0, len(behaviour.answer), size)]
        for index, piece in enumerate(pieces):
            chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": request["model"],
                     "choices": [{"index": 0, "delta": {"content": piece},
                                  "finish_reason": "stop" if index == len(pieces) - 1 else None}]}  # fmt: skip
            await send({"type": "http.response.body", "body": f"data: {json.dumps(chunk)}\n\n".encode(),
                        "more_body": True})  # fmt: skip
            await asyncio.sleep(behaviour.chunk_delay_s)
        if behaviour.usage and (request.get("stream_options") or {}).get("include_usage"):
            final = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage}
            await send({"type": "http.response.body", "body": f"data: {json.dumps(final)}\n\n".encode(),
                        "more_body": True})  # fmt: skip
        self.stream_finished_at[request["model"]] = time.monotonic()
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


async def _json(send: Any, status: int, document: Any) -> None:
    body = json.dumps(document).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def serve_fake_openai() -> AsyncIterator[tuple[FakeOpenAI, str]]:
    """Serve a fresh fake on a free loopback port, in a thread of its own (the app under test may run its
    requests on a loop that blocks the test's); yields it and its base URL (``.../v1``)."""
    fake = FakeOpenAI()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fake, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, name="fake-openai", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    async with httpx.AsyncClient() as http:
        while True:
            try:
                await http.get(f"http://127.0.0.1:{port}/v1/models", timeout=0.5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
    try:
        yield fake, f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)
