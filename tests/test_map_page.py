"""The map page end to end: real server on loopback, headless Chromium through
playwright-core (services/products/map_page.js), tiles requested, drawn, screenshot."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import mosaic_helpers as S
import numpy as np
import pytest
import requests
import uvicorn
from PIL import Image

from beam_pipelines.mosaic import run_mosaic
from services.products import screenshot
from services.products.app import ProductsSettings, create_app
from services.products.screenshot import browser_problem
from tessera.ports import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    problem = browser_problem()
    if problem:
        pytest.skip(f"no headless browser here: {problem}")
    root = tmp_path_factory.mktemp("map")
    classes = S.synthetic_classes(300, 300, 4, blob=20)
    S.write_scene_outputs(root, [S.Scene("city", classes, S.grid_transform(0, 0), "2024-01-01T00:00:00Z")])
    run_mosaic(str(root), str(root), tile_size=256)
    port = free_port()
    app = create_app(ProductsSettings(catalog=str(root), port=port))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "healthz", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.1)
    yield url
    srv.should_exit = True
    thread.join(timeout=10)


def test_map_page_draws_mosaic_tiles_in_headless_chromium(server: str, tmp_path: Path) -> None:
    out = tmp_path / "map.png"
    report = screenshot(server, str(out), timeout_s=60)
    assert not report["pageErrors"], report["pageErrors"]
    assert report["state"]["error"] is None and report["state"]["collection"] == "landcover-mosaic"
    data_tiles = [t for t in report["tiles"] if not t["empty"]]
    assert data_tiles and all(t["status"] == 200 and t["type"] == "image/png" for t in report["tiles"])
    assert all("/tiles/landcover-mosaic/" in t["url"] for t in report["tiles"])
    assert report["drawn"]["images"] >= 1 and report["drawn"]["opaque"] > 10_000
    assert report["legend"] == [c.name for c in S.CLASSES]
    assert report["statsRows"] == len(S.CLASSES)
    # the screenshot shows the class colours
    shot = np.asarray(Image.open(out).convert("RGB"))
    assert shot.shape[:2] == (700, 1100)
    pixels = {tuple(int(v) for v in p) for p in shot[::7, :800:7].reshape(-1, 3)}
    assert sum(c.rgba[:3] in pixels for c in S.CLASSES) >= 4
