"""``tessera serve trigger``: storage events over HTTP -> exactly one Beam job per object version.

``POST /`` takes Eventarc CloudEvents (binary or structured) and Pub/Sub push envelopes;
``GET /healthz``, ``GET /jobs``, ``GET /jobs/{id}``, ``GET /metrics``.

Status codes: 202 a job was queued; 200 a duplicate, an ignored event type, or a
quarantined object (2xx, so the sender does not retry a bad object forever); 400/413 a
malformed request; 401/403 authentication; 503 storage unreachable (transient: retry).
``STATUS_FOR`` is the only place exceptions become status codes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from services.trigger.admission import Admitter
from services.trigger.auth import NoAuth, OidcVerifier
from services.trigger.config import TriggerSettings
from services.trigger.errors import (
    ForbiddenError,
    JobNotFoundError,
    MalformedEventError,
    PayloadTooLargeError,
    StorageUnavailableError,
    UnauthenticatedError,
)
from services.trigger.events import Ignored, parse_http
from services.trigger.launchers import (
    DataflowLauncher,
    DataflowOptions,
    KubernetesLauncher,
    KubernetesOptions,
    Launcher,
    LocalLauncher,
)
from services.trigger.ledger import STATES, Ledger, open_ledger
from services.trigger.metrics import TriggerMetrics
from services.trigger.service import TriggerService
from transforms.core.errors import ConfigError, TesseraError

log = logging.getLogger(__name__)

# Most specific first. Anything else of ours is a server-side fault (500).
STATUS_FOR: tuple[tuple[type[Exception], int], ...] = (
    (PayloadTooLargeError, 413),
    (MalformedEventError, 400),
    (UnauthenticatedError, 401),
    (ForbiddenError, 403),
    (JobNotFoundError, 404),
    (StorageUnavailableError, 503),
)


def status_for(exc: Exception) -> int:
    return next((status for kind, status in STATUS_FOR if isinstance(exc, kind)), 500)


def build_launcher(settings: TriggerSettings) -> Launcher:
    if settings.launcher == "local":
        return LocalLauncher(settings.output, max_workers=settings.max_workers,
                             beam_args=settings.beam_args, timeout_s=settings.job_timeout_s)
    if settings.launcher == "dataflow":
        options = DataflowOptions(
            project=settings.dataflow_project or "", region=settings.dataflow_region or "",
            temp_location=settings.dataflow_temp_location or "",
            staging_location=settings.dataflow_staging_location,
            sdk_container_image=settings.dataflow_sdk_container_image,
            service_account_email=settings.dataflow_service_account_email,
            subnetwork=settings.dataflow_subnetwork,
            no_use_public_ips=settings.dataflow_no_use_public_ips,
            extra_args=tuple(settings.beam_args),
        )
        return DataflowLauncher(settings.output, options, max_workers=settings.max_workers,
                                timeout_s=settings.job_timeout_s)
    options_k8s = KubernetesOptions(
        image=settings.k8s_image or "", namespace=settings.k8s_namespace,
        service_account=settings.k8s_service_account, cpu=settings.k8s_cpu,
        memory=settings.k8s_memory, gpus=settings.k8s_gpus,
        node_selector=settings.k8s_node_selector, backoff_limit=settings.k8s_backoff_limit,
        ttl_seconds_after_finished=settings.k8s_ttl_seconds,
        beam_args=tuple(settings.beam_args) or ("--runner=DirectRunner",),
    )
    return KubernetesLauncher(settings.output, options_k8s)


def build_verifier(settings: TriggerSettings) -> OidcVerifier | NoAuth:
    if settings.auth == "none":
        return NoAuth()
    return OidcVerifier(settings.audience or "", settings.allowed_sa, certs_url=settings.certs_url)


def create_app(
    settings: TriggerSettings,
    *,
    ledger: Ledger | None = None,
    launcher: Launcher | None = None,
    admitter: Admitter | None = None,
    verifier: OidcVerifier | NoAuth | None = None,
) -> FastAPI:
    """The ASGI app; every collaborator can be injected (tests), else built from settings."""
    metrics = TriggerMetrics()
    service = TriggerService(
        ledger or open_ledger(settings.ledger),
        launcher or build_launcher(settings),
        admitter or Admitter.for_products(settings.products, settings.max_pixels),
        metrics,
    )
    auth = verifier or build_verifier(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        resumed = await run_in_threadpool(service.resume)
        if resumed:
            log.warning("resumed %d unfinished job(s)", resumed)
        yield
        await run_in_threadpool(service.close)

    app = FastAPI(title="tessera trigger", lifespan=lifespan)
    app.state.service = service
    app.state.settings = settings

    @app.exception_handler(TesseraError)
    async def _tessera_error(_: Request, exc: TesseraError) -> JSONResponse:
        status = status_for(exc)
        metrics.rejected.labels(str(status)).inc()
        if status >= 500:
            log.error("request failed: %s", exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status, headers=headers)

    def process(headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        auth.verify(headers.get("authorization"))
        parsed = parse_http(headers, body, settings.storage_root)
        if isinstance(parsed, Ignored):
            metrics.events.labels(parsed.kind).inc()
            metrics.ignored.inc()
            return 200, {"status": "ignored", "reason": parsed.reason}
        metrics.events.labels(parsed.kind).inc()
        outcome = service.handle(parsed)
        return (202 if outcome.status == "accepted" else 200), {**outcome.to_dict(), "key": parsed.key}

    @app.post("/")
    async def receive(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "0")
        if declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise PayloadTooLargeError(f"body of {declared} bytes is over {settings.max_body_bytes}")
        body = await request.body()
        if len(body) > settings.max_body_bytes:
            raise PayloadTooLargeError(f"body of {len(body)} bytes is over {settings.max_body_bytes}")
        status, payload = await run_in_threadpool(process, dict(request.headers), body)
        return JSONResponse(payload, status)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        service.ledger.get("healthz")  # raises if the ledger is unreachable
        return {"status": "ok", "launcher": service.launcher.name, "products": settings.products}

    @app.get("/jobs")
    def jobs(state: str | None = Query(default=None, pattern=f"^({'|'.join(STATES)})$"),
             limit: int = Query(default=100, ge=1, le=1000)) -> dict[str, Any]:
        return {"jobs": [j.to_dict() for j in service.ledger.list(state=state, limit=limit)]}

    @app.get("/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        found = service.ledger.get(job_id)
        if found is None:
            raise JobNotFoundError(f"no job {job_id!r}; GET /jobs lists them")
        return found.to_dict()

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera serve trigger", description=__doc__.split("\n")[0],
                                epilog="Unknown --options are passed to every job as Beam options. "
                                       "Every option also reads TESSERA_<NAME> from the environment.")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--storage-root", help="bucket B maps to URL/B (default gs://)")
    p.add_argument("--output", help="where jobs write (tessera infer --output)")
    p.add_argument("--ledger", help="sqlite:///path.db or gs://state-bucket/prefix")
    p.add_argument("--launcher", choices=["local", "dataflow", "kubernetes"])
    p.add_argument("--auth", choices=["oidc", "none"])
    p.add_argument("--audience")
    p.add_argument("--allowed-sa", nargs="+", metavar="EMAIL")
    p.add_argument("--certs-url", help="OIDC signing certificates (default: Google's)")
    p.add_argument("--products", nargs="+", metavar="P")
    p.add_argument("--max-workers", type=int)
    p.add_argument("--max-pixels", type=int)
    p.add_argument("--job-timeout-s", type=float)
    p.add_argument("--log-level", default=os.environ.get("TESSERA_LOG_LEVEL", "INFO"))
    return p


def settings_from_argv(argv: Sequence[str]) -> tuple[TriggerSettings, str]:
    args, beam_args = _parser().parse_known_args(list(argv))
    unknown = [a for a in beam_args if not a.startswith("--")]
    if unknown:
        raise ConfigError(f"unexpected arguments {unknown}; Beam options look like --name=value")
    overrides = {k: v for k, v in vars(args).items() if v is not None and k != "log_level"}
    if beam_args:
        overrides["beam_args"] = beam_args
    try:
        return TriggerSettings(**overrides), args.log_level
    except ValidationError as exc:
        raise ConfigError(f"invalid trigger settings:\n{exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    settings, level = settings_from_argv(sys.argv[1:] if argv is None else argv)
    logging.getLogger("services.trigger").setLevel(level.upper())
    if os.environ.get("STORAGE_EMULATOR_HOST"):  # gcsfs' gRPC probe hangs on emulators
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=level.lower())
    return 0
