"""The Kafka topic catalog, loaded from ``contracts/topics.yaml`` and validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
import yaml

from omninode_bridge.core.contracts import load_yaml
from omninode_bridge.core.inputs import anchored

__all__ = [
    "CatalogError",
    "ConsumerSpec",
    "DlqMonitorSpec",
    "OutboxSpec",
    "RequestReplySpec",
    "Topic",
    "TopicCatalog",
    "TopicName",
    "default_contracts_dir",
    "load_catalog",
]

#: A Kafka topic name: Kafka's own rule (letters, digits, '.', '_', '-'; at most 249).
TopicName = Annotated[
    str,
    msgspec.Meta(
        pattern=anchored(r"[a-zA-Z0-9._-]{1,249}"), min_length=1, max_length=249, description="A Kafka topic name."
    ),
]


class CatalogError(ValueError):
    """The catalog is invalid, or code refers to a topic or consumer it does not define."""


class Defaults(msgspec.Struct, forbid_unknown_fields=True):
    partitions: Annotated[int, msgspec.Meta(ge=1)] = 3
    replication_factor: Annotated[int, msgspec.Meta(ge=1)] = 1
    retention_ms: Annotated[int, msgspec.Meta(ge=-1)] = 604_800_000
    max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 3


class Topic(msgspec.Struct, forbid_unknown_fields=True):
    """One topic: its partitions, the event types it carries and where its failures go."""

    name: TopicName
    description: str = ""
    kind: Literal["event", "dlq"] = "event"
    partitions: Annotated[int, msgspec.Meta(ge=1)] | None = None
    replication_factor: Annotated[int, msgspec.Meta(ge=1)] | None = None
    retention_ms: int | None = None
    event_types: list[str] = msgspec.field(default_factory=list)
    dlq: TopicName | None = None


class ConsumerSpec(msgspec.Struct, forbid_unknown_fields=True):
    """A consumer in code, bound to its topic, group and retry budget by the catalog."""

    topic: TopicName
    group: str
    max_attempts: Annotated[int, msgspec.Meta(ge=1)] | None = None


class GroupTiming(msgspec.Struct, frozen=True):
    """How this process's consumers keep their group membership (deployment settings, not contract).

    A broker answers a group join only once its session's rebalance delay is over (Tansu: half the session
    timeout), so the session timeout also bounds how fast a starting or stopping consumer is ready.
    """

    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000


class DlqMonitorSpec(msgspec.Struct, forbid_unknown_fields=True):
    alert_threshold: Annotated[int, msgspec.Meta(ge=0)] = 10
    check_interval_ms: Annotated[int, msgspec.Meta(ge=100)] = 30_000
    alert_topic: TopicName = "omninode_system_alerts"


class RequestReplySpec(msgspec.Struct, forbid_unknown_fields=True):
    timeout_ms: Annotated[int, msgspec.Meta(ge=1)] = 30_000


class OutboxSpec(msgspec.Struct, forbid_unknown_fields=True):
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    poll_interval_ms: Annotated[int, msgspec.Meta(ge=1)] = 200
    retention_hours: Annotated[float, msgspec.Meta(gt=0)] = 72


class _CatalogFile(msgspec.Struct, forbid_unknown_fields=True):
    catalog_version: str
    topics: list[Topic]
    defaults: Defaults = msgspec.field(default_factory=Defaults)
    dlq_monitor: DlqMonitorSpec = msgspec.field(default_factory=DlqMonitorSpec)
    request_reply: RequestReplySpec = msgspec.field(default_factory=RequestReplySpec)
    outbox: OutboxSpec = msgspec.field(default_factory=OutboxSpec)
    consumers: dict[str, ConsumerSpec] = msgspec.field(default_factory=dict)


class TopicCatalog:
    """The validated catalog; every topic lookup in the program goes through it."""

    def __init__(self, data: _CatalogFile, source: Path | None = None, group_timing: GroupTiming | None = None) -> None:
        self.source = source
        self.group_timing = group_timing or GroupTiming()
        self.defaults = data.defaults
        self.dlq_monitor = data.dlq_monitor
        self.request_reply = data.request_reply
        self.outbox = data.outbox
        self.consumers = data.consumers
        self.topics: dict[str, Topic] = {}
        for topic in data.topics:
            if topic.name in self.topics:
                raise CatalogError(f"topic {topic.name} is defined twice")
            self.topics[topic.name] = topic
        for topic in self.topics.values():
            if topic.dlq is not None:
                target = self.topics.get(topic.dlq)
                if target is None or target.kind != "dlq":
                    raise CatalogError(f"topic {topic.name}: dlq {topic.dlq} is not a dlq topic of the catalog")
        for name, consumer in self.consumers.items():
            if consumer.topic not in self.topics:
                raise CatalogError(f"consumer {name}: topic {consumer.topic} is not in the catalog")
        self.require(self.dlq_monitor.alert_topic)

    def require(self, *names: str) -> None:
        """Raise :class:`CatalogError` unless every topic name is in the catalog."""
        missing = sorted(n for n in names if n not in self.topics)
        if missing:
            where = f" ({self.source})" if self.source else ""
            raise CatalogError(f"topics used in code but missing from the catalog{where}: {', '.join(missing)}")

    def topic(self, name: str) -> Topic:
        """The topic called ``name``."""
        self.require(name)
        return self.topics[name]

    def partitions(self, name: str) -> int:
        """Partition count of a topic (its own or the default)."""
        return self.topic(name).partitions or self.defaults.partitions

    def dlq_for(self, name: str) -> str | None:
        """The DLQ topic paired with ``name``."""
        return self.topic(name).dlq

    def dlq_topics(self) -> list[str]:
        """Every DLQ topic."""
        return [t.name for t in self.topics.values() if t.kind == "dlq"]

    def consumer(self, name: str) -> ConsumerSpec:
        """The catalog entry of a consumer defined in code."""
        try:
            return self.consumers[name]
        except KeyError:
            raise CatalogError(f"consumer {name} is not in the catalog") from None

    def max_attempts(self, consumer: str) -> int:
        """Tries before a message of ``consumer`` goes to the DLQ."""
        return self.consumer(consumer).max_attempts or self.defaults.max_attempts


def default_contracts_dir() -> Path:
    """``contracts/`` at the root of the source tree."""
    return Path(__file__).resolve().parents[4] / "contracts"


def load_catalog(contracts_dir: Path | None = None, group_timing: GroupTiming | None = None) -> TopicCatalog:
    """Load and validate ``topics.yaml``; ``group_timing`` is how its consumers keep their groups.

    Raises:
        CatalogError: The file is missing, not valid YAML, or fails validation.
    """
    path = (contracts_dir or default_contracts_dir()) / "topics.yaml"
    try:
        raw = load_yaml(path.read_text())
    except OSError as exc:
        raise CatalogError(f"cannot read the topic catalog {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path} is not valid YAML: {exc}") from exc
    try:
        data = msgspec.convert(raw, _CatalogFile)
    except msgspec.ValidationError as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    return TopicCatalog(data, source=path, group_timing=group_timing)
