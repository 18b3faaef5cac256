"""Every event shape -> one Arrival; everything else -> MalformedEventError or Ignored."""

from __future__ import annotations

import base64
import json

import pytest
from trigger_util import eventarc_binary, eventarc_structured, object_resource, pubsub_push

from services.trigger.errors import MalformedEventError
from services.trigger.events import Arrival, Ignored, object_url, parse_http

DATA = object_resource("landing", "spot/2024/scene 1.tif", 1712345678901234, size="1234", crc32c="AAAAAA==")


def _expect(parsed: Arrival | Ignored, kind: str, root: str = "gs://") -> Arrival:
    assert isinstance(parsed, Arrival)
    assert (parsed.bucket, parsed.name, parsed.generation) == ("landing", "spot/2024/scene 1.tif", "1712345678901234")
    assert (parsed.size, parsed.crc32c, parsed.kind) == (1234, "AAAAAA==", kind)
    assert parsed.url == object_url(root, "landing", "spot/2024/scene 1.tif")
    assert parsed.key == parsed.url + "#1712345678901234"
    return parsed


def test_binary_cloudevent() -> None:
    headers, body = eventarc_binary(DATA)
    assert headers["ce-type"] == "google.cloud.storage.object.v1.finalized"
    arrival = _expect(parse_http(headers, body, "gs://"), "cloudevent-binary")
    assert arrival.url == "gs://landing/spot/2024/scene 1.tif"
    assert arrival.event_id == headers["ce-id"]


def test_structured_cloudevent_and_storage_root() -> None:
    headers, body = eventarc_structured(DATA)
    assert headers["content-type"].startswith("application/cloudevents+json")
    arrival = _expect(parse_http(headers, body, "file:///data/buckets/"), "cloudevent-structured",
                      "file:///data/buckets")
    assert arrival.url == "file:///data/buckets/landing/spot/2024/scene 1.tif"


def test_binary_event_without_name_in_data_uses_subject_and_source() -> None:
    data = {k: v for k, v in DATA.items() if k not in ("name", "bucket")}
    headers, body = eventarc_binary({**data, "bucket": "landing", "name": "spot/2024/scene 1.tif"})
    body = json.dumps(data).encode()
    del headers["ce-bucket"]
    _expect(parse_http(headers, body, "gs://"), "cloudevent-binary")


def test_pubsub_push_envelope() -> None:
    headers, body = pubsub_push(DATA)
    arrival = _expect(parse_http(headers, body, "gs://"), "pubsub")
    assert arrival.event_id


def test_pubsub_push_without_payload_has_no_size() -> None:
    headers, body = pubsub_push(None, bucketId="landing", objectId="a.tif", objectGeneration="7")
    arrival = parse_http(headers, body, "gs://")
    assert isinstance(arrival, Arrival)
    assert (arrival.url, arrival.generation, arrival.size, arrival.crc32c) == ("gs://landing/a.tif", "7", None, None)


def test_pubsub_message_through_eventarc() -> None:
    _, push = pubsub_push(DATA)
    headers, body = eventarc_binary(json.loads(push), type="google.cloud.pubsub.topic.v1.messagePublished",
                                    source="//pubsub.googleapis.com/projects/p/topics/landing")
    _expect(parse_http(headers, body, "gs://"), "cloudevent-binary")


@pytest.mark.parametrize("make", [
    lambda: eventarc_binary(DATA, type="google.cloud.storage.object.v1.deleted"),
    lambda: eventarc_structured(DATA, type="google.cloud.storage.object.v1.metadataUpdated"),
    lambda: pubsub_push(DATA, event_type="OBJECT_DELETE"),
])
def test_other_storage_events_are_ignored(make) -> None:
    headers, body = make()
    assert isinstance(parse_http(headers, body, "gs://"), Ignored)


def _b64(obj: object) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


MALFORMED = {
    "empty body": ({"content-type": "application/json"}, b""),
    "not json": ({"content-type": "application/json"}, b"{nope"),
    "json without message": ({}, b'{"hello": 1}'),
    "json list": ({}, b"[1, 2]"),
    "structured, not json": ({"content-type": "application/cloudevents+json"}, b"{nope"),
    "binary, missing ce-id": ({"ce-specversion": "1.0", "ce-type": "t", "ce-source": "s"}, b"{}"),
    "batch": ({"content-type": "application/cloudevents-batch+json"}, b"[]"),
}


@pytest.mark.parametrize("headers,body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_requests(headers, body) -> None:
    with pytest.raises(MalformedEventError):
        parse_http(headers, body, "gs://")


BAD_DATA = {
    "bad generation": {"generation": "12a"},
    "negative size": {"size": "-1"},
    "size not int": {"size": "big"},
    "crc not base64": {"crc32c": "!!!"},
    "crc wrong length": {"crc32c": base64.b64encode(b"12345").decode()},
    "dotdot name": {"name": "../../etc/passwd"},
    "absolute name": {"name": "/etc/passwd"},
    "bad bucket": {"bucket": "UPPER"},
}


@pytest.mark.parametrize("change", BAD_DATA.values(), ids=BAD_DATA.keys())
@pytest.mark.parametrize("shape", [eventarc_binary, eventarc_structured, pubsub_push])
def test_malformed_object_fields(shape, change) -> None:
    headers, body = shape({**DATA, **change})
    with pytest.raises(MalformedEventError):
        parse_http(headers, body, "file:///srv/buckets")


def test_unknown_cloudevent_type_is_malformed() -> None:
    headers, body = eventarc_binary(DATA, type="com.example.other")
    with pytest.raises(MalformedEventError, match="unsupported CloudEvent type"):
        parse_http(headers, body, "gs://")


def test_subject_and_data_disagree() -> None:
    headers, body = eventarc_binary(DATA, subject="objects/other.tif")
    with pytest.raises(MalformedEventError, match="disagree"):
        parse_http(headers, body, "gs://")


def test_pubsub_attributes_and_data_disagree() -> None:
    headers, body = pubsub_push(DATA, objectGeneration="5")
    with pytest.raises(MalformedEventError, match="disagree"):
        parse_http(headers, body, "gs://")


def test_pubsub_data_not_base64() -> None:
    body = json.dumps({"message": {"attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "landing",
                                                  "objectId": "a.tif", "objectGeneration": "1"},
                                   "data": "%%%"}}).encode()
    with pytest.raises(MalformedEventError, match="base64"):
        parse_http({}, body, "gs://")
    body = json.dumps({"message": {"attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "landing",
                                                  "objectId": "a.tif", "objectGeneration": "1"},
                                   "data": _b64([1])}}).encode()
    with pytest.raises(MalformedEventError, match="object resource"):
        parse_http({}, body, "gs://")


def test_object_url_roots() -> None:
    assert object_url("gs://", "b", "x/y.tif") == "gs://b/x/y.tif"
    assert object_url("file:///tmp/root", "b", "y.tif") == "file:///tmp/root/b/y.tif"
    assert object_url("file:///tmp/root/", "b", "y.tif") == "file:///tmp/root/b/y.tif"
    assert object_url("memory://", "b", "y.tif") == "memory://b/y.tif"
