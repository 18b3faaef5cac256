"""OIDC bearer tokens from Pub/Sub push and Eventarc, verified with google-auth.

The signature, ``exp``/``iat`` and ``aud`` are checked by ``google.auth.jwt.decode``
against Google's signing certificates (``https://www.googleapis.com/oauth2/v1/certs``,
``{kid: PEM}``). A JWKS endpoint (``{"keys": [...]}``, e.g. the v3 URL) works too: RSA
JWKs are turned into PEM public keys. Certificates are cached for ``cache_s`` and
refetched once when a token names an unknown ``kid`` (key rotation). Then the issuer,
``email_verified`` and the allowed service-account emails are checked here.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
from google.auth import exceptions as auth_exceptions
from google.auth import jwt

from services.trigger.errors import ForbiddenError, UnauthenticatedError

log = logging.getLogger(__name__)

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")

CertsFetcher = Callable[[], Mapping[str, str]]


def _b64int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def certs_from_json(payload: Mapping[str, Any]) -> dict[str, str]:
    """``{kid: PEM}`` from either Google's v1 PEM map or a JWKS document."""
    if "keys" not in payload:
        return {str(k): str(v) for k, v in payload.items()}
    certs: dict[str, str] = {}
    for jwk in payload["keys"]:
        if jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig":
            continue
        key = RSAPublicNumbers(_b64int(jwk["e"]), _b64int(jwk["n"])).public_key()
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        certs[str(jwk.get("kid", ""))] = pem.decode()
    return certs


def http_certs_fetcher(url: str, timeout_s: float = 10.0) -> CertsFetcher:
    def fetch() -> Mapping[str, str]:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (https or loopback)
            return certs_from_json(json.loads(response.read()))

    return fetch


class OidcVerifier:
    """Checks ``Authorization: Bearer <id token>``; raises 401/403 errors, returns claims."""

    def __init__(
        self,
        audience: str | Sequence[str],
        allowed_emails: Sequence[str] = (),
        *,
        certs_url: str = GOOGLE_CERTS_URL,
        certs: Mapping[str, str] | None = None,
        issuers: Sequence[str] = GOOGLE_ISSUERS,
        cache_s: float = 300.0,
        clock_skew_s: int = 10,
    ) -> None:
        if not audience:
            raise ValueError("OIDC auth needs an audience (--audience, e.g. the service URL)")
        self.audience = audience if isinstance(audience, str) else list(audience)
        self.allowed_emails = frozenset(e.lower() for e in allowed_emails)
        self.issuers = tuple(issuers)
        self.clock_skew_s = clock_skew_s
        self._fetch: CertsFetcher = (lambda: dict(certs)) if certs is not None else http_certs_fetcher(certs_url)
        self._cache_s = cache_s
        self._certs: Mapping[str, str] = {}
        self._fetched_at = -float("inf")
        self._lock = threading.Lock()

    def _current_certs(self, kid: str | None, *, force: bool = False) -> Mapping[str, str]:
        with self._lock:
            stale = time.monotonic() - self._fetched_at > self._cache_s
            if force or stale or (kid is not None and kid not in self._certs):
                try:
                    self._certs = self._fetch()
                    self._fetched_at = time.monotonic()
                except OSError as exc:
                    log.error("could not fetch OIDC signing certificates: %s", exc)
                    if not self._certs:
                        raise UnauthenticatedError("signing certificates unavailable; cannot verify tokens") from exc
            return self._certs

    def verify(self, authorization: str | None) -> Mapping[str, Any]:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise UnauthenticatedError("missing 'Authorization: Bearer <OIDC token>' header")
        token = authorization.split(" ", 1)[1].strip()
        try:
            header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
            kid = header.get("kid") if isinstance(header, dict) else None
        except (ValueError, IndexError):
            raise UnauthenticatedError("bearer token is not a JWT") from None
        certs = self._current_certs(kid)
        try:
            claims = jwt.decode(token, certs=certs, audience=self.audience,
                                clock_skew_in_seconds=self.clock_skew_s)
        except (auth_exceptions.GoogleAuthError, ValueError) as exc:
            raise UnauthenticatedError(f"token rejected: {exc}") from None
        if claims.get("iss") not in self.issuers:
            raise UnauthenticatedError(f"token issuer {claims.get('iss')!r} is not one of {list(self.issuers)}")
        email = str(claims.get("email", "")).lower()
        if claims.get("email_verified") is not True:
            raise ForbiddenError(f"token email {email!r} is not verified")
        if self.allowed_emails and email not in self.allowed_emails:
            raise ForbiddenError(f"service account {email!r} is not allowed to send events")
        return claims


class NoAuth:
    """``--auth none``: explicit, and loud about it."""

    def __init__(self) -> None:
        log.warning("trigger authentication is DISABLED (--auth none): anyone who can reach "
                    "the service can start jobs; use --auth oidc outside a laptop")

    def verify(self, authorization: str | None) -> Mapping[str, Any]:
        return {}
