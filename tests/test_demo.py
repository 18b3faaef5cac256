"""`tessera demo --no-serve`: the whole path on the local default, then a rerun that changes nothing."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
from rasterio.windows import from_bounds


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith("ledger.db")}


@pytest.mark.e2e
def test_demo_end_to_end_and_rerun(tmp_path: Path, landsat_scene: Path) -> None:
    workdir = tmp_path / "demo"
    cmd = [sys.executable, "-m", "tessera", "demo", "--no-serve", "--workdir", str(workdir),
           "--products", "landsat-rgb", "landcover"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = workdir / "output"
    items = sorted(str(p.relative_to(out)) for p in out.glob("*/*/*.json")
                   if p.stem == p.parent.name and not p.parent.parent.name.endswith("-mosaic"))
    assert items == ["landcover/spot-a/spot-a.json", "landcover/spot-b/spot-b.json",
                     "landcover/spot-c/spot-c.json", "landsat-rgb/landsat-rgb-byte/landsat-rgb-byte.json"]
    assert "duplicate delivery" in first.stdout
    assert "spot-corrupt.tif: QUARANTINED" in first.stdout and "not a readable raster" in first.stdout
    # the mosaic covers every scene: wherever a scene has a class, the mosaic has one
    vrt = out / "landcover-mosaic" / "mosaic.vrt"
    with rasterio.open(vrt) as mosaic:
        for scene in ("spot-a", "spot-b", "spot-c"):
            with rasterio.open(out / "landcover" / scene / "classes.tif") as ds:
                classes = ds.read(1)
                window = from_bounds(*ds.bounds, transform=mosaic.transform).round_offsets().round_lengths()
                covered = mosaic.read(1, window=window, boundless=True, fill_value=255)
            assert covered.shape == classes.shape
            assert ((classes == 255) | (covered != 255)).all(), scene
    catalog = json.loads((out / "catalog.json").read_text())
    children = {link["href"] for link in catalog["links"] if link["rel"] == "child"}
    assert {"./landcover/collection.json", "./landcover-mosaic/collection.json"} <= children

    before = _digest(workdir)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "nothing new" in second.stdout
    assert _digest(workdir) == before
