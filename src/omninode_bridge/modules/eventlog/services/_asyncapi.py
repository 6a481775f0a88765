"""The AsyncAPI document of the broker's topics, built once per app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import yaml
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI, get_asyncapi_html

from omninode_bridge import __version__
from omninode_bridge.core.events import OnexEnvelopeV1, TopicCatalog

_ENVELOPE_SCHEMA = "OnexEnvelopeV1"
_DLQ_MESSAGE = (
    "The record a consumer gave up on, with its original key and bytes (usually an OnexEnvelopeV1). Headers: "
    "error, original_topic, original_partition, original_offset, consumer, attempts, and event_id and "
    "event_type when the record was an envelope."
)


@dataclass(frozen=True, slots=True)
class AsyncApiDocument:
    """The app's AsyncAPI document, rendered once.

    It satisfies FastStream's ``Specification`` protocol so FastStream's HTML page can render it.

    Attributes:
        title: The document's title.
        json: The document as JSON text.
        html: The AsyncAPI web component page showing it.
    """

    title: str
    json: str
    html: str = ""

    def to_json(self) -> str:
        """The document as JSON text."""
        return self.json

    def to_jsonable(self) -> Any:
        """The document as plain data."""
        return msgspec.json.decode(self.json)

    def to_yaml(self) -> str:
        """The document as YAML text."""
        return yaml.safe_dump(self.to_jsonable(), sort_keys=False)


def asyncapi_document(broker: KafkaBroker, catalog: TopicCatalog) -> AsyncApiDocument:
    """The AsyncAPI 3.0 document of the broker's topics (build it once per app: it registers publishers).

    Every catalog topic is in it: topics no subscriber of this process consumes get a documentation-only
    publisher on the broker first (never used to send: the outbox relay publishes). Messages of event
    topics are described as :class:`OnexEnvelopeV1`.

    Args:
        broker: The app's broker (its subscribers and publishers are the document's operations).
        catalog: The topic catalog.

    Returns:
        The document.
    """
    # Synchronous on purpose: with no await in between, concurrent first requests cannot both register
    # the documentation publishers.
    documented = _addresses(_specification(broker).to_jsonable())
    for topic in catalog.topics.values():
        if topic.name not in documented:
            broker.publisher(topic.name, title=topic.name, description=topic.description or None)
    raw = _specification(broker).to_jsonable()
    _describe_envelopes(raw, catalog)
    title = raw["info"]["title"]
    json_text = msgspec.json.encode(raw).decode()
    # FastStream's page renders any Specification; ours is the post-processed document. Without the "try it"
    # plugin, because this app serves no AsyncAPI try-out endpoint.
    html = get_asyncapi_html(AsyncApiDocument(title=title, json=json_text), try_it_out_path=None)
    return AsyncApiDocument(title=title, json=json_text, html=html)


def _specification(broker: KafkaBroker) -> Any:
    return AsyncAPI(
        broker,
        title="OmniNode Bridge events",
        version=__version__,
        description=(
            "Kafka topics of OmniNode Bridge, from the topic catalog (contracts/topics.yaml). Every event is "
            "an OnexEnvelopeV1 in JSON, keyed by its correlation id, with event_type, event_id and "
            "envelope_version headers. A consumer that gives up on a record sends the original bytes to the "
            "topic's DLQ; admins re-drive them with POST /events/dlq/{id}/redrive."
        ),
        schema_version="3.0.0",
    ).to_specification()


def _addresses(raw: dict[str, Any]) -> set[str]:
    return {c.get("address") for c in (raw.get("channels") or {}).values() if c.get("address")}


def _describe_envelopes(raw: dict[str, Any], catalog: TopicCatalog) -> None:
    """Point the messages of event topics at the envelope's JSON schema and name their event types; say
    what DLQ records carry."""
    components = raw.setdefault("components", {})
    messages: dict[str, Any] = components.setdefault("messages", {})
    schema_defs: dict[str, Any] = components.setdefault("schemas", {})
    # FastStream derives payload schemas with pydantic, which cannot describe a msgspec Struct.
    (envelope,), defs = msgspec.json.schema_components([OnexEnvelopeV1], ref_template="#/components/schemas/{name}")
    schema_defs.update(defs)
    for channel in (raw.get("channels") or {}).values():
        topic = catalog.topics.get(channel.get("address", ""))
        if topic is None:
            continue
        for ref in (channel.get("messages") or {}).values():
            message = messages.get(str(ref.get("$ref", "")).rpartition("/")[2])
            if message is None:
                continue
            if topic.kind == "dlq":
                # The original bytes, which may not be an envelope at all (poison messages): no schema.
                message["description"] = _DLQ_MESSAGE
                continue
            old = str((message.get("payload") or {}).get("$ref", "")).rpartition("/")[2]
            if old and old != _ENVELOPE_SCHEMA:
                schema_defs.pop(old, None)
            message["payload"] = envelope
            if topic.event_types:
                message["description"] = "Event types: " + ", ".join(topic.event_types)
