"""The zero-latency upstream of ``bench.metrics``: a raw ASGI app that answers every OpenAI chat completion
at once with the same small answer and its usage (served by uvicorn in its own process).

Raw ASGI rather than a framework so the upstream costs as little CPU as possible: both the direct run and
the run through ``/execute`` go through it, and whatever it costs is shared by both sides of the ratio.
"""

from __future__ import annotations

import json
import time
from typing import Any

_ANSWER = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()), "model": "bench-m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "A short answer from the model."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
}).encode()  # fmt: skip
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_ANSWER)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST /v1/chat/completions: the fixed answer; GET /health/live: 200 (for the bench's readiness poll)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:  # drain the request body
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _ANSWER})
