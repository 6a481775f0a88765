"""The composition root: ``create_app(settings)`` builds the one Litestar app of the process.

It builds the platform module and the feature modules (``build_modules(settings)`` hands each its own
settings group), registers their controllers, FastStream routers and dependencies, and its lifespan owns
every connection: the database engine, Redis, the Kafka broker (consumers run in this process) and the
modules' lifespans, started in the order their ``requires`` declare. Importing this module connects to
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import structlog
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from litestar import Litestar
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from litestar.plugins.prometheus import PrometheusController
from opentelemetry import metrics
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from redis.asyncio import Redis

from omninode_bridge import __version__, platform
from omninode_bridge.core.breaker import BreakerState
from omninode_bridge.core.db import Database, UnitOfWork
from omninode_bridge.core.errors import exception_handlers, problem_details_plugin
from omninode_bridge.core.events import (
    ConsumerResources,
    EventPublisher,
    GroupTiming,
    OutboxRelay,
    TopicCatalog,
    bind_consumers,
    ensure_topics,
    load_catalog,
)
from omninode_bridge.core.http_metrics import HttpMetricsMiddleware
from omninode_bridge.core.inputs import InputGuardMiddleware, SafeRequest
from omninode_bridge.core.module import Module, Resources, start_order
from omninode_bridge.core.observability import (
    REQUEST_BUCKETS,
    CorrelationMiddleware,
    breaker_state_gauge,
    configure_logging,
    configure_tracing,
    register_gauges,
)
from omninode_bridge.core.safe_errors import loggable_error
from omninode_bridge.modules import build_modules
from omninode_bridge.settings import Settings, load_settings

__all__ = ["create_app"]

log = structlog.get_logger(__name__)


def _uow_provider(database: Database) -> Callable[[], AsyncGenerator[UnitOfWork, None]]:
    async def provide_uow() -> AsyncGenerator[UnitOfWork, None]:
        """One unit of work per request, behind the database circuit breaker."""
        async with database.unit_of_work() as uow:
            yield uow

    return provide_uow


class _MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


def create_app(settings: Settings | None = None, modules: Sequence[Module] | None = None) -> Litestar:
    """Build the application.

    Args:
        settings: Settings to run with; read from the environment when omitted.
        modules: Feature modules to register; ``build_modules(settings)`` when omitted.

    Returns:
        The Litestar app. Nothing is connected until its lifespan starts.

    Raises:
        ValueError: A service URL is unset, or a module requires an unknown module or a cycle of them.
    """
    settings = settings or load_settings()
    missing = settings.missing_services()
    if missing:
        raise ValueError(f"cannot create the app: {', '.join(missing)} not set")
    configure_logging(settings.observability)
    tracer_provider = configure_tracing(settings.observability)
    tracing = settings.observability.otlp_endpoint is not None

    database = Database(
        settings.database,
        on_breaker_change=lambda s: _on_breaker_change("database", s),
    )
    # EngineTracer is what SQLAlchemyInstrumentor.instrument(engine=...) builds; used directly because the
    # instrumentor is a process-wide singleton and every app (tests build many) has its own engine.
    EngineTracer(  # type: ignore[no-untyped-call]  # opentelemetry-instrumentation-sqlalchemy leaves it unannotated
        tracer_provider.get_tracer("omninode_bridge.db"),
        database.engine.sync_engine,
        metrics.get_meter("omninode_bridge.db").create_up_down_counter(
            "db.client.connections.usage", unit="connections"
        ),
    )
    broker = KafkaBroker(
        settings.kafka.bootstrap_servers or "",
        client_id=settings.kafka.client_id,
        request_timeout_ms=settings.kafka.request_timeout_ms,
        # Topics come from the catalog (ensure_topics), with its partition counts, never from subscribers.
        allow_auto_create_topics=False,
        middlewares=[KafkaTelemetryMiddleware(tracer_provider=tracer_provider)],
        logger=structlog.get_logger("omninode_bridge.kafka"),
    )
    catalog = load_catalog(
        Path(settings.server.contracts_dir) if settings.server.contracts_dir else None,
        GroupTiming(settings.kafka.session_timeout_ms, settings.kafka.heartbeat_interval_ms),
    )
    features = build_modules(settings) if modules is None else modules
    platform_state = platform.build_state(
        settings.security, database, module_health={m.name: m.health for m in features if m.health is not None}
    )
    all_modules = start_order([platform.build_module(platform_state), *features])
    for module in all_modules:
        for check in module.checks:
            check()  # contracts are validated before anything connects
    for module in all_modules:
        catalog.require(*module.publishes)  # a topic missing from the catalog stops start-up here
        for make_router in module.kafka_routers:
            broker.include_router(make_router(catalog))
    publisher = EventPublisher(catalog, database)
    bind_consumers(broker, ConsumerResources(database=database, catalog=catalog, publisher=publisher))

    register_gauges(
        "omninode_db_pool_connections",
        "Database pool connections by state.",
        lambda: [({"state": k}, float(v)) for k, v in database.pool_stats().items()],
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        redis = Redis.from_url(
            settings.redis.url or "",
            socket_timeout=settings.redis.socket_timeout_seconds,
            socket_connect_timeout=settings.redis.socket_timeout_seconds,
            health_check_interval=30,
        )
        resources = Resources(
            database=database, redis=redis, broker=broker, catalog=catalog, publisher=publisher, started_at=time.time()
        )
        bootstrap = settings.kafka.bootstrap_servers or ""
        relay = OutboxRelay(database, catalog, bootstrap, request_timeout_ms=settings.kafka.request_timeout_ms)
        background = [
            asyncio.create_task(_start_broker(broker, bootstrap, catalog), name="kafka-connect"),
            asyncio.create_task(relay.run(), name="outbox-relay"),
        ]
        try:
            async with contextlib.AsyncExitStack() as stack:
                for module in all_modules:
                    for module_lifespan in module.lifespans:
                        await stack.enter_async_context(_bounded_exit(module.name, module_lifespan(resources)))
                # The start-up objects (modules, compiled statements, contracts) live as long as the process:
                # out of the collector's way, each collection scans only what requests allocate, and a larger
                # first generation collects less often (py-spy: GC was a third of a /hooks/batch request).
                gc.collect()
                gc.freeze()
                gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
                log.info("omninode-bridge started", version=__version__, modules=[m.name for m in all_modules])
                yield
        finally:
            for task in background:
                task.cancel()
            await _bounded("background tasks", asyncio.gather(*background, return_exceptions=True))
            await _bounded("kafka broker", broker.stop())
            await _bounded("redis", redis.aclose())
            await _bounded("database", database.dispose())
            gc.unfreeze()  # what this app held may be collected again (tests start many apps in one process)
            log.info("omninode-bridge stopped")

    dependencies: dict[str, Provide] = {"uow": Provide(_uow_provider(database))}
    for module in all_modules:
        dependencies.update(module.dependencies)

    app = Litestar(
        route_handlers=[_MetricsController, *(h for m in all_modules for h in m.route_handlers)],
        dependencies=dependencies,
        lifespan=[lifespan],
        middleware=[
            InputGuardMiddleware,
            DefineMiddleware(
                HttpMetricsMiddleware,
                app_name="omninode-bridge",
                prefix="omninode",
                buckets=REQUEST_BUCKETS,
                exclude="^/metrics",
            ),
            DefineMiddleware(platform.SecurityMiddleware),
        ],
        plugins=[
            problem_details_plugin(),
            # Request spans only when they go somewhere (see observability.request_trace_context).
            *(
                [OpenTelemetryPlugin(OpenTelemetryConfig(tracer_provider=tracer_provider, exclude=["^/metrics"]))]
                if tracing
                else []
            ),
        ],
        exception_handlers=exception_handlers,
        request_class=SafeRequest,
        openapi_config=_openapi(),
        request_max_body_size=settings.server.max_body_bytes,
        logging_config=None,
        debug=False,
    )
    # Route middleware runs only when a route matched; what every response needs (404s and 405s included)
    # wraps the whole app instead: correlation ids outermost, then rate limits of unmatched requests.
    platform.attach_platform_state(app, platform_state)
    app.asgi_handler = CorrelationMiddleware(platform.UnmatchedRouteLimits(app.asgi_handler), trace_context=not tracing)
    return app


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="OmniNode Bridge",
        version=__version__,
        description=(
            "Event, stamping and workflow hub. Every endpoint except /health* and /metrics needs an API key "
            "in `X-API-Key` or `Authorization: Bearer`. Errors are RFC 9457 problem details. "
            "The Kafka topics and OnexEnvelopeV1 events are documented in AsyncAPI at [/asyncapi](/asyncapi) "
            "([/asyncapi.json](/asyncapi.json))."
        ),
        path="/schema",
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        components=Components(
            security_schemes={
                "ApiKeyHeader": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
                "BearerAuth": SecurityScheme(type="http", scheme="bearer"),
            }
        ),
        use_handler_docstrings=True,
    )


def _on_breaker_change(name: str, state: BreakerState) -> None:
    breaker_state_gauge.labels(dependency=name).set(int(state))
    log.warning("circuit breaker changed state", dependency=name, state=state.name)


async def _start_broker(broker: KafkaBroker, bootstrap_servers: str, catalog: TopicCatalog) -> None:
    """Create the catalog's topics and start the consumers, retrying so an unreachable broker does not
    block start-up."""
    delay = 0.5
    while True:
        try:
            await ensure_topics(bootstrap_servers, catalog)
            await broker.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("kafka unavailable; retrying", error=str(exc), retry_in_s=delay)
            with contextlib.suppress(Exception):
                await broker.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        else:
            log.info("kafka connected")
            return


SHUTDOWN_STEP_SECONDS = 15.0
#: Allocations between two young-generation collections (CPython's default is 700).
GC_GEN0_THRESHOLD = 10_000


@contextlib.asynccontextmanager
async def _bounded_exit(name: str, lifespan: contextlib.AbstractAsyncContextManager[None]) -> AsyncIterator[None]:
    """Enter a module's lifespan; leave it within :data:`SHUTDOWN_STEP_SECONDS` whatever it waits on.

    A module's background task stopped mid-call (a Kafka client in its start-up, a rebalance, a held query) may
    never answer: the app logs it and stops the other modules and the connections anyway.
    """
    await lifespan.__aenter__()
    try:
        yield
    finally:
        await _bounded(f"module {name}", lifespan.__aexit__(None, None, None))


async def _bounded(what: str, step: Awaitable[object]) -> None:
    """Await one shutdown step for at most :data:`SHUTDOWN_STEP_SECONDS`, logging (not raising) a failure.

    A client stopped in the middle of its own start-up (an aiokafka producer or consumer cancelled
    mid-connect, a rebalance in flight) can wait forever for a reply that never comes; a process asked to
    stop must stop anyway, and each later step must still run.
    """
    try:
        async with asyncio.timeout(SHUTDOWN_STEP_SECONDS):
            await step
    except TimeoutError:
        log.warning("shutdown step timed out; moving on", step=what, timeout_s=SHUTDOWN_STEP_SECONDS)
    except Exception as exc:
        log.warning("shutdown step failed", step=what, error=loggable_error(exc))
