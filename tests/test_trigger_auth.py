"""OIDC: tokens signed by a test key, certificates served from a loopback HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from trigger_util import (
    RecordingLauncher,
    TokenMinter,
    eventarc_binary,
    object_resource,
    write_scene,
)

from services.trigger.admission import Admitter
from services.trigger.app import create_app
from services.trigger.auth import OidcVerifier, certs_from_json
from services.trigger.config import TriggerSettings
from services.trigger.errors import ForbiddenError, UnauthenticatedError
from services.trigger.ledger import SqliteLedger

AUDIENCE = "https://trigger.test"
PUSH_SA = "eventarc-push@proj.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def minter() -> TokenMinter:
    return TokenMinter()


class _Certs:
    """A loopback server for ``/pem`` (Google v1 format) and ``/jwks``; counts fetches."""

    def __init__(self, minter: TokenMinter) -> None:
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.fetches += 1
                body = json.dumps(minter.certs if self.path == "/pem" else minter.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def certs_server(minter: TokenMinter) -> Iterator[_Certs]:
    server = _Certs(minter)
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.mark.parametrize("path", ["/pem", "/jwks"])
def test_valid_token_from_cert_server(minter: TokenMinter, certs_server: _Certs, path: str) -> None:
    verifier = OidcVerifier(AUDIENCE, [PUSH_SA], certs_url=certs_server.url + path)
    before = certs_server.fetches
    for _ in range(3):
        claims = verifier.verify("Bearer " + minter.token(email=PUSH_SA))
        assert claims["email"] == PUSH_SA
    assert certs_server.fetches == before + 1  # cached


def test_certs_from_jwks_is_pem(minter: TokenMinter) -> None:
    assert certs_from_json(minter.jwks)[minter.kid].startswith("-----BEGIN PUBLIC KEY-----")


BAD = {
    "missing": (None, UnauthenticatedError),
    "not bearer": ("Basic dXNlcjpwYXNz", UnauthenticatedError),
    "garbage": ("Bearer not.a.jwt", UnauthenticatedError),
    "forged": ("other-key", UnauthenticatedError),
    "expired": ({"expires_in": -600}, UnauthenticatedError),
    "wrong audience": ({"audience": "https://elsewhere"}, UnauthenticatedError),
    "wrong issuer": ({"issuer": "https://evil.example"}, UnauthenticatedError),
    "unverified email": ({"email_verified": False}, ForbiddenError),
    "disallowed email": ({"email": "intruder@proj.iam.gserviceaccount.com"}, ForbiddenError),
}


def _header(minter: TokenMinter, spec: object) -> str | None:
    if spec is None or isinstance(spec, str) and spec != "other-key":
        return spec  # type: ignore[return-value]
    if spec == "other-key":  # same kid, different private key: a forgery
        return "Bearer " + TokenMinter(kid=minter.kid).token(email=PUSH_SA)
    return "Bearer " + minter.token(**{"email": PUSH_SA, **spec})  # type: ignore[dict-item]


@pytest.mark.parametrize("spec,error", BAD.values(), ids=BAD.keys())
def test_bad_tokens(minter: TokenMinter, spec: object, error: type[Exception]) -> None:
    verifier = OidcVerifier(AUDIENCE, [PUSH_SA], certs=minter.certs)
    with pytest.raises(error):
        verifier.verify(_header(minter, spec))


def test_app_rejects_bad_tokens_and_changes_nothing(tmp_path: Path, minter: TokenMinter,
                                                   certs_server: _Certs) -> None:
    scene = write_scene(tmp_path / "landing" / "a.tif")
    settings = TriggerSettings(auth="oidc", audience=AUDIENCE, allowed_sa=[PUSH_SA],
                               certs_url=certs_server.url + "/pem", storage_root=f"file://{tmp_path}",
                               output=str(tmp_path / "out"))
    launcher = RecordingLauncher()
    app = create_app(settings, ledger=SqliteLedger(tmp_path / "l.db"), launcher=launcher,
                     admitter=Admitter.for_products(["landcover"]))
    headers, body = eventarc_binary(object_resource("landing", "a.tif", 1, path=scene))
    with TestClient(app) as client:
        for name, (spec, error) in BAD.items():
            auth = _header(minter, spec)
            response = client.post("/", headers={**headers, **({"authorization": auth} if auth else {})},
                                   content=body)
            expected = 403 if error is ForbiddenError else 401
            assert response.status_code == expected, (name, response.text)
        assert client.get("/jobs").json()["jobs"] == [] and launcher.submitted == []
        good = client.post("/", headers={**headers, "authorization": "Bearer " + minter.token(email=PUSH_SA)},
                           content=body)
        assert good.status_code == 202, good.text
        assert len(launcher.submitted) == 1


def test_auth_none_is_explicit_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    from services.trigger.app import build_verifier

    with caplog.at_level("WARNING"):
        build_verifier(TriggerSettings(auth="none"))
    assert "DISABLED" in caplog.text
