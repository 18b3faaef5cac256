"""Helpers for the trigger tests: event builders, a recording launcher, token minting."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from helpers import synthetic_scene

from services.trigger.admission import crc32c_of_file
from services.trigger.launchers import Launcher
from services.trigger.ledger import Job, now

FINALIZED = "google.cloud.storage.object.v1.finalized"


def object_resource(bucket: str, name: str, generation: str | int, path: Path | None = None,
                    **over: Any) -> dict[str, Any]:
    """The GCS object resource Eventarc and Pub/Sub send (numbers as strings, as GCS does)."""
    data: dict[str, Any] = {"kind": "storage#object", "bucket": bucket, "name": name,
                            "generation": str(generation), "metageneration": "1",
                            "contentType": "image/tiff", "timeCreated": "2025-01-01T00:00:00Z"}
    if path is not None:
        data["size"] = str(path.stat().st_size)
        data["crc32c"] = crc32c_of_file(path)
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def eventarc_binary(data: dict[str, Any], **attrs: Any) -> tuple[dict[str, str], bytes]:
    bucket = data.get("bucket", "b")
    event = CloudEvent({"type": FINALIZED, "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
                        "subject": f"objects/{data.get('name', '')}", "id": uuid.uuid4().hex,
                        "bucket": bucket, "datacontenttype": "application/json", **attrs}, data)
    headers, body = to_binary(event)
    return dict(headers), body


def eventarc_structured(data: dict[str, Any], **attrs: Any) -> tuple[dict[str, str], bytes]:
    bucket = data.get("bucket", "b")
    event = CloudEvent({"type": FINALIZED, "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
                        "subject": f"objects/{data.get('name', '')}", "id": uuid.uuid4().hex, **attrs}, data)
    headers, body = to_structured(event)
    return dict(headers), body


def pubsub_push(data: dict[str, Any] | None, *, event_type: str = "OBJECT_FINALIZE",
                **attributes: str) -> tuple[dict[str, str], bytes]:
    """A Pub/Sub push request carrying a GCS notification (payload format JSON_API_V1)."""
    attrs = {"eventType": event_type, "payloadFormat": "JSON_API_V1" if data else "NONE",
             "notificationConfig": "projects/_/buckets/b/notificationConfigs/1",
             "eventTime": "2025-01-01T00:00:00Z"}
    if data:
        attrs.update(bucketId=data["bucket"], objectId=data["name"], objectGeneration=data["generation"])
    attrs.update(attributes)
    message: dict[str, Any] = {"attributes": attrs, "messageId": uuid.uuid4().hex,
                               "publishTime": "2025-01-01T00:00:01Z"}
    if data:
        message["data"] = base64.b64encode(json.dumps(data).encode()).decode()
    body = json.dumps({"message": message, "subscription": "projects/p/subscriptions/tessera"}).encode()
    return {"content-type": "application/json"}, body


def write_scene(path: Path, size: int = 32, bands: int = 4, **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic_scene(path, size, size, bands=bands, **kw)
    return path


class RecordingLauncher(Launcher):
    """Records submissions and marks them succeeded; Beam is not what these tests test."""

    name = "recording"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.submitted: list[Job] = []
        self.delay_s = delay_s
        self._lock = threading.Lock()

    def submit(self, job: Job) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            self.submitted.append(job)
        self.record(job.id, state="succeeded", started=now(), finished=now(), launcher=self.name)

    def claimed_keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(j.key, j.product) for j in self.submitted]


class TokenMinter:
    """An RSA signing key and its certificate, minting Google-style ID tokens."""

    def __init__(self, kid: str = "test-key") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
        from google.auth import crypt

        self.kid = kid
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tessera-test")])
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + dt.timedelta(days=30))
                .sign(key, hashes.SHA256()))
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        numbers = key.public_key().public_numbers()

        def b64(n: int) -> str:
            return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

        self.jwks = {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                               "n": b64(numbers.n), "e": b64(numbers.e)}]}
        self.signer = crypt.RSASigner.from_string(self.private_pem, key_id=kid)

    @property
    def certs(self) -> dict[str, str]:
        return {self.kid: self.cert_pem}

    def token(self, *, audience: str = "https://trigger.test", email: str = "push@p.iam.gserviceaccount.com",
              issuer: str = "https://accounts.google.com", expires_in: int = 600,
              email_verified: bool = True, **extra: Any) -> str:
        from google.auth import jwt

        issued = int(time.time()) - 5
        claims = {"iss": issuer, "aud": audience, "sub": "1234", "email": email,
                  "email_verified": email_verified, "iat": issued, "exp": issued + expires_in, **extra}
        if expires_in < 0:
            claims["iat"] = issued + expires_in - 3600
        return jwt.encode(self.signer, claims).decode()
