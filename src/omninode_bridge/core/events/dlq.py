"""DLQ monitor: counts messages per DLQ topic and consumer lag, alerts past the catalog's threshold."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Gauge
from redis.asyncio import Redis

from omninode_bridge.core.db import Database
from omninode_bridge.core.events.catalog import TopicCatalog
from omninode_bridge.core.events.envelope import new_envelope
from omninode_bridge.core.events.outbox import EventPublisher
from omninode_bridge.core.safe_errors import loggable_error

__all__ = ["DlqMonitor"]

log = structlog.get_logger(__name__)

dlq_messages_gauge = Gauge("omninode_dlq_messages", "Messages held in each DLQ topic.", ["topic"])
dlq_alert_gauge = Gauge("omninode_dlq_alert", "1 while a DLQ topic is above the alert threshold.", ["topic"])
consumer_lag_gauge = Gauge(
    "omninode_consumer_lag", "Messages not yet consumed, per group and topic.", ["group", "topic"]
)


class DlqMonitor:
    """Periodic check of DLQ sizes (end minus beginning offsets) and consumer-group lag.

    Args:
        catalog: The DLQ topics, the consumer groups and the alert threshold.
        bootstrap_servers: The broker to read offsets from.
        database: Where an alert is staged (the outbox).
        publisher: Publishes the alert event.
        redis: Elects the one process that alerts when several run a monitor (None: this one always does).
    """

    def __init__(
        self,
        catalog: TopicCatalog,
        bootstrap_servers: str,
        database: Database,
        publisher: EventPublisher,
        redis: Redis | None = None,
    ) -> None:
        self.catalog = catalog
        self.redis = redis
        self.bootstrap = bootstrap_servers
        self.database = database
        self.publisher = publisher
        self.threshold = self.catalog.dlq_monitor.alert_threshold
        self.interval = self.catalog.dlq_monitor.check_interval_ms / 1000
        self._alerted: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    async def run(self) -> None:
        """Check every interval until cancelled; a failed check is logged and retried next time."""
        while True:
            with contextlib.suppress(Exception):
                await self.check()
            await asyncio.sleep(self.interval)

    async def _end_minus_begin(self, topics: list[str]) -> dict[str, dict[int, tuple[int, int]]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [
                TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or [])
            ]
            if not partitions:
                await consumer._client.force_metadata_update()  # first use: metadata not fetched yet
                partitions = [
                    TopicPartition(topic, p)
                    for topic in topics
                    for p in sorted(consumer.partitions_for_topic(topic) or [])
                ]
            begin = await consumer.beginning_offsets(partitions) if partitions else {}
            end = await consumer.end_offsets(partitions) if partitions else {}
        finally:
            await consumer.stop()
        out: dict[str, dict[int, tuple[int, int]]] = {}
        for tp in partitions:
            out.setdefault(tp.topic, {})[tp.partition] = (begin[tp], end[tp])
        return out

    async def check(self) -> dict[str, int]:
        """Count DLQ messages, refresh the gauges, alert where over the threshold; returns the counts."""
        offsets = await self._end_minus_begin(self.catalog.dlq_topics())
        counts = {topic: sum(e - b for b, e in parts.values()) for topic, parts in offsets.items()}
        for topic in self.catalog.dlq_topics():
            count = counts.setdefault(topic, 0)
            dlq_messages_gauge.labels(topic=topic).set(count)
            over = count > self.threshold
            dlq_alert_gauge.labels(topic=topic).set(1 if over else 0)
            if over and count != self._alerted.get(topic):
                await self._alert(topic, count)
                self._alerted[topic] = count
        self.counts = counts
        try:
            await self.lag()
        except Exception as exc:  # the DLQ counts above stand; the lag is refreshed next time
            log.warning("consumer lag check failed", error=loggable_error(exc))
        return counts

    async def _alert(self, topic: str, count: int) -> None:
        if not await self._first_to_alert(topic, count):
            return
        log.error("DLQ threshold exceeded", dlq_topic=topic, count=count, threshold=self.threshold)
        envelope = new_envelope(
            event_type="DLQAlertEvent",
            payload={
                "dlq_topic": topic,
                "failure_count": count,
                "threshold": self.threshold,
                "timestamp": dt.datetime.now(dt.UTC).isoformat(),
            },
        )
        async with self.database.unit_of_work() as uow:
            await self.publisher.publish(uow, self.catalog.dlq_monitor.alert_topic, envelope)
            await uow.commit()

    async def _first_to_alert(self, topic: str, count: int) -> bool:
        """Whether this process is the first to see ``count`` on ``topic`` (every worker runs a monitor).

        A Redis ``SET NX`` per (topic, count) elects one alerting process; the lease outlives several
        check intervals so workers that check later see it. Without Redis every worker alerts: a
        duplicate alert is better than none.
        """
        if self.redis is None:
            return True
        lease = f"dlq:alert:{topic}:{count}"
        try:
            return bool(await self.redis.set(lease, os.getpid(), nx=True, ex=max(60, int(self.interval * 10))))
        except Exception as exc:
            log.warning("DLQ alert lease unavailable; alerting anyway", error=loggable_error(exc))
            return True

    async def lag(self) -> dict[tuple[str, str], int]:
        """Refresh the consumer-lag gauge: per (group, topic), end offsets minus the group's commits.

        The committed offsets are read by a consumer in the group that never subscribes (so it does not
        join the group or trigger a rebalance); its OffsetFetch goes through the group coordinator.
        The admin client's ``list_consumer_group_offsets`` is not used: Tansu answers its request in a
        form aiokafka cannot decode. A partition without a commit counts from its beginning offset.

        Returns:
            The lag per (group, topic).
        """
        groups = {spec.group: spec.topic for spec in self.catalog.consumers.values()}
        offsets = await self._end_minus_begin(sorted(set(groups.values())))
        lags: dict[tuple[str, str], int] = {}
        for group, topic in sorted(groups.items()):
            reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False)
            await reader.start()
            try:
                lag = 0
                for partition, (begin, end) in offsets.get(topic, {}).items():
                    committed = await reader.committed(TopicPartition(topic, partition))
                    lag += max(0, end - (committed if committed is not None else begin))
            finally:
                await reader.stop()
            consumer_lag_gauge.labels(group=group, topic=topic).set(lag)
            lags[(group, topic)] = lag
        return lags
