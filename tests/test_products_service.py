"""The products service over a real catalogue (per-scene outputs + a mosaic)."""

from __future__ import annotations

import io
from pathlib import Path

import morecantile
import mosaic_helpers as S
import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from PIL import Image
from rasterio.warp import Resampling, reproject

from beam_pipelines.mosaic import run_mosaic
from services.products.app import ProductsSettings, create_app, settings_from_argv
from transforms.core.errors import ConfigError
from transforms.core.stac import validate_core


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("products")
    a = S.synthetic_classes(200, 200, 1)
    a[:, :20] = 255
    b = np.full((100, 100), 4, np.uint8)  # all water
    S.write_scene_outputs(root, [S.Scene("a", a, S.grid_transform(0, 0), "2024-01-01T00:00:00Z"),
                                 S.Scene("b", b, S.grid_transform(150, 150), "2024-02-01T00:00:00Z")])
    run_mosaic(str(root), str(root), tile_size=128)
    return root


@pytest.fixture(scope="module")
def client(catalog: Path) -> TestClient:
    return TestClient(create_app(ProductsSettings(catalog=str(catalog), cache_ttl_s=0)))


def tile_over(bbox: list[float], z: int) -> morecantile.Tile:
    tms = morecantile.tms.get("WebMercatorQuad")
    return tms.tile((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2, z)


def test_collections_items_and_health(client: TestClient) -> None:
    colls = client.get("/collections").json()["collections"]
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["collections"] == 2
    assert [c["id"] for c in colls] == ["landcover-mosaic", "landcover"]  # mosaics first
    for c in colls:
        validate_core({**c, "stac_extensions": []})
        names = [k["name"] for k in c["summaries"]["classification:classes"]]
        assert names[:2] == ["background", "building"]
        assert c["tessera:tiles"] == f"/tiles/{c['id']}/{{z}}/{{x}}/{{y}}.png"
    items = client.get("/collections/landcover/items")
    assert items.headers["content-type"].startswith("application/geo+json")
    assert sorted(f["id"] for f in items.json()["features"]) == ["a", "b"]
    assert client.get("/collections/landcover-mosaic/items").json()["numberReturned"] == 4
    missing = client.get("/collections/nope/items")
    assert missing.status_code == 404 and "landcover-mosaic" in missing.json()["detail"]


def test_stats_are_class_areas(client: TestClient) -> None:
    stats = client.get("/collections/landcover-mosaic/stats").json()
    by_name = {r["name"]: r for r in stats["classes"]}
    a = S.synthetic_classes(200, 200, 1)
    a[:, :20] = 255
    mosaic = np.full((250, 250), 255, np.uint8)
    mosaic[:200, :200] = a
    mosaic[150:250, 150:250] = 4  # b is the latest
    px = S.RES * S.RES
    assert stats["total_area_m2"] == pytest.approx((mosaic != 255).sum() * px)
    assert by_name["water"]["area_m2"] == pytest.approx((mosaic == 4).sum() * px)
    assert sum(r["share"] for r in stats["classes"]) == pytest.approx(1.0, abs=1e-4)
    # per-scene Items carry no areas: counted from the COGs (overlaps counted twice)
    scenes = client.get("/collections/landcover/stats").json()
    assert scenes["total_area_m2"] == pytest.approx(((a != 255).sum() + 100 * 100) * px)
    assert scenes["note"]


def test_tiles_are_coloured_pngs_transparent_outside_data(client: TestClient, catalog: Path) -> None:
    coll = client.get("/collections/landcover-mosaic").json()
    bbox = coll["extent"]["spatial"]["bbox"][0]
    t = tile_over(bbox, 17)
    res = client.get(f"/tiles/landcover-mosaic/{t.z}/{t.x}/{t.y}.png")
    assert res.status_code == 200 and res.headers["content-type"] == "image/png"
    img = np.asarray(Image.open(io.BytesIO(res.content)).convert("RGBA"))
    assert img.shape == (256, 256, 4)
    opaque = img[..., 3] > 0
    assert opaque.any() and not opaque.all()  # part of the tile is outside the data
    colours = {tuple(int(v) for v in p) for p in img[opaque][:, :3]}
    palette = {c.rgba[:3] for c in S.CLASSES}
    assert colours <= palette and (43, 140, 190) in colours  # water from scene b
    # the same pixels as warping the mosaic onto the tile with nearest neighbour
    tms = morecantile.tms.get("WebMercatorQuad")
    xy = tms.xy_bounds(t)
    expected = np.full((256, 256), 255, np.uint8)
    with rasterio.open(catalog / "landcover-mosaic" / "mosaic.vrt") as ds:
        reproject(rasterio.band(ds, 1), expected, dst_crs="EPSG:3857", dst_nodata=255, resampling=Resampling.nearest,
                  dst_transform=rasterio.transform.from_bounds(*xy, 256, 256))
    lut = np.zeros((256, 4), np.uint8)
    for c in S.CLASSES:
        lut[c.value] = c.rgba
    assert (lut[expected] == img).all(axis=-1).mean() > 0.99
    # far away: an empty transparent PNG, flagged
    far = client.get("/tiles/landcover-mosaic/18/0/0.png")
    assert far.status_code == 200 and far.headers["x-tessera-tile"] == "empty"
    assert np.asarray(Image.open(io.BytesIO(far.content)).convert("RGBA"))[..., 3].max() == 0
    # low zoom reads overviews and still draws
    low = tile_over(bbox, 12)
    res = client.get(f"/tiles/landcover/{low.z}/{low.x}/{low.y}.png")
    assert res.status_code == 200 and "x-tessera-tile" not in res.headers
    assert client.get("/tiles/landcover/3/9/0.png").status_code == 400
    assert client.get("/tiles/nope/1/0/0.png").status_code == 404


def test_metrics_and_map_page(client: TestClient) -> None:
    client.get("/tiles/landcover-mosaic/18/0/0.png")
    body = client.get("/metrics").text
    assert 'tessera_products_tiles_total{result="empty"}' in body
    assert 'tessera_products_requests_total{route="/tiles/{collection_id}/{z}/{x}/{y}.png",status="200"}' in body
    page = client.get("/")
    assert page.status_code == 200 and "/vendor/leaflet/leaflet.js" in page.text
    assert client.get("/static/map.js").status_code == 200


def test_settings_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TESSERA_PRODUCTS_PORT", "9001")
    s = settings_from_argv(["--catalog", str(tmp_path)])
    assert s.port == 9001 and s.catalog == str(tmp_path)
    with pytest.raises(ConfigError, match="port"):
        settings_from_argv(["--port", "70000"])
