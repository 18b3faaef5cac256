"""``tessera serve products``: the STAC catalogue, XYZ map tiles and a map page.

    GET /                                   map page (Leaflet): mosaics, legend, class areas
    GET /healthz                            liveness + how many collections are visible
    GET /collections                        STAC Collections
    GET /collections/{id}                   one Collection
    GET /collections/{id}/items             its Items (FeatureCollection)
    GET /collections/{id}/stats             class areas (m^2 and share)
    GET /tiles/{id}/{z}/{x}/{y}.png         WebMercatorQuad tiles, product colours,
                                            transparent outside data (empty PNG)
    GET /metrics                            Prometheus

Settings: flags, else ``TESSERA_PRODUCTS_*`` environment variables, else defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from services.products.catalog import CatalogIndex, CollectionNotFoundError
from services.products.tiles import empty_png, render_tile
from transforms.core.errors import ConfigError, TesseraError

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
REPO_NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"


class ProductsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TESSERA_PRODUCTS_", extra="forbid", frozen=True)

    catalog: str = "demo-output"
    host: str = "127.0.0.1"
    port: int = Field(default=8082, ge=0, le=65535)
    cache_ttl_s: float = Field(default=10.0, ge=0, description="how long the catalogue index is reused")
    max_items_per_tile: int = Field(default=64, ge=1, description="beyond this, a tile is drawn empty: zoom in")
    node_modules: str = Field(default=str(REPO_NODE_MODULES), description="where `make web-deps` put leaflet")
    tile_cache_s: int = Field(default=60, ge=0, description="Cache-Control max-age of tiles")


class ProductsMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("tessera_products_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=self.registry)
        self.tiles = Counter("tessera_products_tiles", "Map tiles served, by result (data|empty)",
                             ["result"], registry=self.registry)
        self.tile_seconds = Histogram("tessera_products_tile_seconds", "Time to render one map tile",
                                      registry=self.registry,
                                      buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


def _vendor_dir(settings: ProductsSettings) -> Path | None:
    path = Path(settings.node_modules) / "leaflet" / "dist"
    return path if (path / "leaflet.js").exists() else None


def create_app(settings: ProductsSettings | None = None) -> FastAPI:
    settings = settings or ProductsSettings()
    index = CatalogIndex(settings.catalog, ttl_s=settings.cache_ttl_s)
    metrics = ProductsMetrics()
    app = FastAPI(title="tessera products", version="1", docs_url="/docs", redoc_url=None)
    app.state.settings, app.state.index, app.state.metrics = settings, index, metrics

    # errors -> HTTP status, in one place
    @app.exception_handler(CollectionNotFoundError)
    async def _not_found(_: Request, exc: CollectionNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(ConfigError)
    async def _bad_request(_: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(TesseraError)
    async def _server_error(_: Request, exc: TesseraError) -> JSONResponse:
        log.exception("request failed: %s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=500)

    @app.middleware("http")
    async def _count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.requests.labels(getattr(route, "path", "unmatched"), str(response.status_code)).inc()
        return response

    vendor = _vendor_dir(settings)
    if vendor is not None:
        app.mount("/vendor/leaflet", StaticFiles(directory=vendor), name="leaflet")
    else:
        log.warning("leaflet not found under %s: the map page will not draw (run `make web-deps`)",
                    settings.node_modules)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        # liveness must stay cheap: report the cached index, never walk the catalogue here
        return {"status": "ok", "catalog": settings.catalog, "collections": index.cached_count(),
                "map_library": vendor is not None}

    @app.get("/collections")
    def collections() -> dict[str, Any]:
        colls = sorted(index.collections().values(), key=lambda c: (not c.is_mosaic, c.id))
        return {"collections": [c.stac() for c in colls],
                "links": [{"rel": "self", "href": "/collections", "type": "application/json"}]}

    @app.get("/collections/{collection_id}")
    def collection(collection_id: str) -> dict[str, Any]:
        return index.collection(collection_id).stac()

    @app.get("/collections/{collection_id}/items")
    def items(collection_id: str) -> Response:
        coll = index.collection(collection_id)
        body = {"type": "FeatureCollection", "features": [i.doc for i in coll.items],
                "numberReturned": len(coll.items),
                "links": [{"rel": "collection", "href": f"/collections/{coll.id}", "type": "application/json"}]}
        return JSONResponse(body, media_type="application/geo+json")

    @app.get("/collections/{collection_id}/stats")
    async def stats(collection_id: str) -> dict[str, Any]:
        return await run_in_threadpool(index.stats, collection_id)

    @app.get("/tiles/{collection_id}/{z}/{x}/{y}.png")
    async def tile(collection_id: str, z: int, x: int, y: int) -> Response:
        coll = index.collection(collection_id)
        start = time.perf_counter()
        png = await run_in_threadpool(render_tile, coll, z, x, y, settings.max_items_per_tile)
        metrics.tile_seconds.observe(time.perf_counter() - start)
        metrics.tiles.labels("data" if png else "empty").inc()
        headers = {"Cache-Control": f"public, max-age={settings.tile_cache_s}"}
        if png is None:
            headers["X-Tessera-Tile"] = "empty"
        return Response(png or empty_png(), media_type="image/png", headers=headers)

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


def settings_from_argv(argv: Sequence[str]) -> ProductsSettings:
    parser = argparse.ArgumentParser(prog="tessera serve products", description=__doc__.split("\n")[0],
                                     epilog="Every option also reads TESSERA_PRODUCTS_<NAME> from the environment.")
    parser.add_argument("--catalog", help="STAC catalog root: the --output of `tessera infer`/`tessera mosaic`")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--cache-ttl-s", type=float)
    parser.add_argument("--node-modules", help="folder holding leaflet/ (default: the repository's node_modules)")
    args = parser.parse_args(list(argv))
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    if "catalog" in overrides and "://" not in overrides["catalog"]:
        overrides["catalog"] = os.path.abspath(overrides["catalog"])
    try:
        return ProductsSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid products settings:\n{exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    settings = settings_from_argv(sys.argv[1:] if argv is None else argv)
    app = create_app(settings)
    print(f"tessera products: http://{settings.host}:{settings.port}/  (catalog {settings.catalog})", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=os.environ.get("TESSERA_LOG_LEVEL", "info").lower())
    return 0
