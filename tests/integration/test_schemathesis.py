"""schemathesis over every operation of the OpenAPI document, against the app on the real embedded stack.

The app is served by uvicorn in a thread with its own event loop (its database pool, Redis client and
Kafka consumers live in that loop), so schemathesis's synchronous calls never block the server. Each
generated case is sent with the admin key and checked for server errors, undocumented status codes,
content types and response schemas.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from litestar.serialization import encode_json
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.requests import ManagedCookiesSession

from omninode_bridge.app import create_app
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.settings import load_settings
from tests.integration.conftest import ADMIN_KEY, live_server, make_settings
from tests.support.contracts_helper import contracts_copy

#: Generated examples per operation, on top of the explicit and coverage cases: about 3 minutes for ~80
#: operations on 2 cores. Derandomized: the same cases every run (they change only with the document or this test).
MAX_EXAMPLES = 25
#: Codegen request-reply waits this long for a responder (none runs in the tests), then answers 504.
REPLY_TIMEOUT_MS = 200
#: An SSE stream never ends by itself: its cases read the head of the stream for this long, then disconnect.
STREAM_READ_SECONDS = 0.1
#: Codegen request-reply operations: with no responder running, their documented answer is 504.
REQUEST_REPLY = {"/codegen/analyze", "/codegen/validate", "/codegen/pattern", "/codegen/mixin"}


# schemathesis's own strategies trip this Hypothesis deprecation; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

#: Cases sent, by operation and by generation mode (reported at the end of the module).
_cases: Counter[str] = Counter()
_modes: Counter[GenerationMode] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_case_count(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how many cases schemathesis generated (the issue's closing note quotes it), even under -q."""
    yield
    if _cases:
        modes = ", ".join(f"{count} {mode.value}" for mode, count in sorted(_modes.items()))
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(f"\nschemathesis: {_cases.total()} cases over {len(_cases)} operations ({modes})")


class _ServerThread:
    """The app under uvicorn in a daemon thread; ``url`` once it answers, ``stop()`` to end it."""

    def __init__(self, stack: EmbeddedStack, contracts: Path) -> None:
        self.settings = make_settings(
            stack,
            server={"contracts_dir": str(contracts)},
            # A generated ?index= equal to a query's index holds the request: keep the hold short here.
            registry={"max_wait_seconds": 0.2},
        )
        self.url: str | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="schemathesis-app", daemon=True)

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(60) or self.url is None:
            raise RuntimeError(f"the app did not start: {self._error!r}")
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with live_server(self.settings) as url:
                self.url = url
                self._ready.set()
                await self._stop.wait()

        try:
            asyncio.run(serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()


@pytest.fixture(scope="module")
def http_session() -> Iterator[ManagedCookiesSession]:
    """One keep-alive connection for every case: a session per case (schemathesis's default) costs a new
    connection and session each time. Its cookies are dropped after each call, as a fresh session's would be."""
    with ManagedCookiesSession() as session:
        yield session


#: The SSE cases' clients are plain HTTP: one TLS context for all of them, instead of loading the CA store per case.
_TLS = ssl.create_default_context()


@pytest.fixture(scope="session")
def api_url(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of an app whose codegen request-reply gives up after :data:`REPLY_TIMEOUT_MS`."""

    def short_reply(document: dict[str, Any]) -> None:
        document["request_reply"]["timeout_ms"] = REPLY_TIMEOUT_MS

    server = _ServerThread(stack, contracts_copy(tmp_path_factory.mktemp("schemathesis"), short_reply))
    try:
        yield server.start()
    finally:
        server.stop()


def _document() -> dict[str, Any]:
    """The app's OpenAPI document, built without connecting to anything (collection needs no servers)."""
    offline = load_settings({"OMNINODE_ENV": "test"}, env_file=None).with_services(
        database_url="postgresql+asyncpg://nobody@127.0.0.1:9/none",
        redis_url="redis://127.0.0.1:9/0",
        kafka="127.0.0.1:9",
    )
    # Through JSON, as /schema/openapi.json serves it.
    return json.loads(encode_json(create_app(offline).openapi_schema.to_schema()))


DOCUMENT = _document()
#: Operations whose success is an SSE stream (read for a moment by :func:`_call_stream`, not to its end).
STREAMS = {
    path
    for path, operations in DOCUMENT["paths"].items()
    for operation in operations.values()
    if "text/event-stream" in operation.get("responses", {}).get("200", {}).get("content", {})
}
schema = schemathesis.openapi.from_dict(DOCUMENT)
# The key is sent by the test itself (admin scope); generated credentials would only test the 401 path.
schema.config.generation.update(with_security_parameters=False)


def _not_a_server_error(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """``not_a_server_error``, except the documented 504 of a request-reply no responder answered."""
    if response.status_code == 504 and case.operation.path in REQUEST_REPLY:
        return None
    return not_a_server_error(ctx, response, case)


#: What every case is checked for.
CHECKS = [_not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _call_stream(case: schemathesis.Case, base_url: str) -> httpx.Response:
    """Send an SSE case and keep the status, headers and the first bytes of the (endless) body.

    The answer's head may take seconds on a loaded machine; only the body is read for
    :data:`STREAM_READ_SECONDS` (an idle open stream sends nothing more).
    """
    kwargs = case.as_transport_kwargs(base_url=base_url, headers={"X-API-Key": ADMIN_KEY})
    request = httpx.Request(kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=kwargs.get("headers"))

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(timeout=30, verify=_TLS) as http:
            response = await http.send(request, stream=True)
            head = b""
            try:
                async with asyncio.timeout(STREAM_READ_SECONDS):
                    async for chunk in response.aiter_bytes():
                        head += chunk
            except TimeoutError:
                pass  # the stream is open and idle: what we wanted to see
            finally:
                await response.aclose()
        answer = httpx.Response(response.status_code, headers=response.headers, content=head, request=request)
        answer.read()
        answer.elapsed = response.elapsed
        return answer

    return asyncio.run(call())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi_document(
    case: schemathesis.Case, api_url: str, http_session: ManagedCookiesSession
) -> None:
    """Every generated case: no 5xx, a documented status, the documented content type and schema."""
    _cases[case.operation.label] += 1
    if case.meta is not None:
        _modes[case.meta.generation.mode] += 1
    if case.operation.path in STREAMS:
        case.validate_response(_call_stream(case, api_url), checks=CHECKS)
        return
    case.call_and_validate(
        base_url=api_url, session=http_session, headers={"X-API-Key": ADMIN_KEY}, checks=CHECKS, timeout=30
    )


def test_the_served_document_is_the_one_tested(api_url: str) -> None:
    """The cases come from the document built at collection; the app serves the same one."""
    served = httpx.get(f"{api_url}/schema/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


def test_every_operation_was_exercised(request: pytest.FixtureRequest) -> None:
    """Each selected operation got cases, positive and negative ones (runs after the cases above)."""
    name = test_api_conforms_to_its_openapi_document.__name__
    selected = {item.name[len(name) + 1 : -1] for item in request.session.items if item.name.startswith(name + "[")}
    if not selected:
        pytest.skip("the schemathesis cases were not selected")
    assert selected <= set(_cases), f"never exercised: {sorted(selected - set(_cases))}"
    assert _modes[GenerationMode.POSITIVE] > 0
    assert _modes[GenerationMode.NEGATIVE] > 0
