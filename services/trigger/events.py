"""Every event source, normalised to one ``Arrival``.

Three HTTP shapes reach ``POST /``:

* Eventarc CloudEvents, binary mode (``ce-*`` headers, JSON body = the GCS object
  resource) or structured mode (``Content-Type: application/cloudevents+json``), type
  ``google.cloud.storage.object.v1.finalized``, subject ``objects/NAME``;
* Eventarc's Pub/Sub CloudEvent (``google.cloud.pubsub.topic.v1.messagePublished``) whose
  data is a Pub/Sub message carrying a GCS notification;
* a Pub/Sub push envelope ``{"message": {"attributes": {...}, "data": b64}, "subscription"}``
  of a GCS notification (``eventType`` ``OBJECT_FINALIZE``, ``bucketId``, ``objectId``,
  ``objectGeneration``; data is the JSON object resource when ``payloadFormat`` is
  ``JSON_API_V1``).

``tessera watch`` builds the same record from ``fs.info``. The idempotency key is
``URL#generation``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudevents.exceptions import GenericException as CloudEventError
from cloudevents.http import from_http

from services.trigger.errors import MalformedEventError

FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
STORAGE_TYPE_PREFIX = "google.cloud.storage.object.v1."
OBJECT_FINALIZE = "OBJECT_FINALIZE"

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_GENERATION = re.compile(r"^[0-9]{1,20}$")
_SOURCE_BUCKET = re.compile(r"/buckets/([^/]+)$")


@dataclass(frozen=True)
class Arrival:
    """One object version that arrived: what admission and the ledger need."""

    bucket: str
    name: str
    generation: str
    size: int | None
    crc32c: str | None
    url: str
    kind: str  # cloudevent-binary | cloudevent-structured | pubsub | watch
    event_id: str | None = None

    @property
    def key(self) -> str:
        return f"{self.url}#{self.generation}"


@dataclass(frozen=True)
class Ignored:
    """A well-formed event that is not an object finalisation (delete, metadata update)."""

    kind: str
    reason: str


def object_url(storage_root: str, bucket: str, name: str) -> str:
    """``--storage-root`` maps bucket B to ``ROOT/B`` (``gs://`` -> ``gs://B/NAME``)."""
    root = storage_root if storage_root.endswith("://") else storage_root.rstrip("/") + "/"
    return f"{root}{bucket}/{name}"


def _check_object(bucket: Any, name: Any, generation: Any) -> tuple[str, str, str]:
    if not isinstance(bucket, str) or not _BUCKET.match(bucket):
        raise MalformedEventError(f"bucket {bucket!r} is not a valid bucket name")
    if not isinstance(name, str) or not name or len(name.encode()) > 1024:
        raise MalformedEventError(f"object name {name!r} is missing or longer than 1024 bytes")
    parts = name.split("/")
    # ".." segments would escape a file:// storage root; GCS allows them, we refuse them.
    if name.startswith("/") or any(p in (".", "..") for p in parts) or "\x00" in name:
        raise MalformedEventError(f"object name {name!r} has '.', '..', a leading '/' or NUL")
    generation = str(generation) if isinstance(generation, int | str) else generation
    if not isinstance(generation, str) or not _GENERATION.match(generation):
        raise MalformedEventError(f"generation {generation!r} must be a decimal integer")
    return bucket, name, generation


def _size(value: Any) -> int | None:
    if value is None:
        return None
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise MalformedEventError(f"size {value!r} must be an integer") from None
    if size < 0:
        raise MalformedEventError(f"size {size} must be >= 0")
    return size


def _crc32c(value: Any) -> str | None:
    if value is None:
        return None
    try:
        raw = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise MalformedEventError(f"crc32c {value!r} is not base64") from None
    if len(raw) != 4:
        raise MalformedEventError(f"crc32c {value!r} must encode 4 bytes (big-endian CRC32C)")
    return str(value)


def _from_object_resource(
    data: Mapping[str, Any], storage_root: str, kind: str, event_id: str | None,
    bucket: Any = None, name: Any = None, generation: Any = None,
) -> Arrival:
    bucket = data.get("bucket", bucket)
    name = data.get("name", name)
    generation = data.get("generation", generation)
    bucket, name, generation = _check_object(bucket, name, generation)
    return Arrival(
        bucket=bucket,
        name=name,
        generation=generation,
        size=_size(data.get("size")),
        crc32c=_crc32c(data.get("crc32c")),
        url=object_url(storage_root, bucket, name),
        kind=kind,
        event_id=event_id,
    )


def _from_pubsub_message(
    message: Any, storage_root: str, kind: str
) -> Arrival | Ignored:
    if not isinstance(message, Mapping):
        raise MalformedEventError("Pub/Sub envelope has no 'message' object")
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise MalformedEventError("Pub/Sub message 'attributes' must be an object")
    event_type = attributes.get("eventType")
    if event_type is None:
        raise MalformedEventError("Pub/Sub message is not a GCS notification (no eventType attribute)")
    if event_type != OBJECT_FINALIZE:
        return Ignored(kind, f"eventType {event_type} is not {OBJECT_FINALIZE}")
    resource: dict[str, Any] = {}
    raw = message.get("data")
    if raw:
        try:
            resource = json.loads(base64.b64decode(raw, validate=True))
        except (binascii.Error, ValueError, TypeError):
            raise MalformedEventError("Pub/Sub message data is not base64-encoded JSON") from None
        if not isinstance(resource, dict):
            raise MalformedEventError("Pub/Sub message data must be a JSON object resource")
    bucket, name, generation = _check_object(
        attributes.get("bucketId"), attributes.get("objectId"), attributes.get("objectGeneration")
    )
    if resource:
        for field, expected in (("bucket", bucket), ("name", name), ("generation", generation)):
            if field in resource and str(resource[field]) != expected:
                raise MalformedEventError(
                    f"Pub/Sub attributes and data disagree on {field}: {expected!r} vs {resource[field]!r}"
                )
    message_id = message.get("messageId") or message.get("message_id")
    return _from_object_resource(resource, storage_root, kind, message_id, bucket, name, generation)


def _from_cloudevent(headers: Mapping[str, str], body: bytes, storage_root: str) -> Arrival | Ignored:
    binary = "ce-specversion" in headers
    kind = "cloudevent-binary" if binary else "cloudevent-structured"
    try:
        event = from_http(dict(headers), body)
    except CloudEventError as exc:
        raise MalformedEventError(f"not a valid CloudEvent: {exc}") from None
    event_type = event["type"]
    data = event.data
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data) if data else None
        except ValueError:
            raise MalformedEventError("CloudEvent data is not JSON") from None
    if event_type == PUBSUB_PUBLISHED:
        if not isinstance(data, Mapping):
            raise MalformedEventError("Pub/Sub CloudEvent has no data object")
        return _from_pubsub_message(data.get("message"), storage_root, kind)
    if event_type != FINALIZED:
        if event_type.startswith(STORAGE_TYPE_PREFIX):
            return Ignored(kind, f"event type {event_type} is not {FINALIZED}")
        raise MalformedEventError(f"unsupported CloudEvent type {event_type!r}; expected {FINALIZED}")
    if not isinstance(data, Mapping):
        raise MalformedEventError("CloudEvent data must be the GCS object resource (a JSON object)")
    subject = event.get("subject") or ""
    name = subject[len("objects/") :] if subject.startswith("objects/") else None
    match = _SOURCE_BUCKET.search(event["source"] or "")
    bucket = event.get("bucket") or (match.group(1) if match else None)
    if name is not None and "name" in data and data["name"] != name:
        raise MalformedEventError(f"subject {subject!r} and data.name {data['name']!r} disagree")
    return _from_object_resource(data, storage_root, kind, event["id"], bucket, name)


def parse_http(headers: Mapping[str, str], body: bytes, storage_root: str) -> Arrival | Ignored:
    """The ``Arrival`` an HTTP request announces; ``Ignored`` for other storage events.

    Raises ``MalformedEventError`` for anything that is not one of the shapes above.
    """
    headers = {k.lower(): v for k, v in headers.items()}
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if "ce-specversion" in headers or content_type == "application/cloudevents+json":
        return _from_cloudevent(headers, body, storage_root)
    if content_type == "application/cloudevents-batch+json":
        raise MalformedEventError("batched CloudEvents are not supported; send one event per request")
    try:
        envelope = json.loads(body) if body else None
    except ValueError:
        raise MalformedEventError("body is neither a CloudEvent nor a JSON Pub/Sub push envelope") from None
    if not isinstance(envelope, dict) or "message" not in envelope:
        raise MalformedEventError(
            "body is neither a CloudEvent (ce-* headers or application/cloudevents+json) "
            "nor a Pub/Sub push envelope ({'message': ..., 'subscription': ...})"
        )
    return _from_pubsub_message(envelope["message"], storage_root, "pubsub")
