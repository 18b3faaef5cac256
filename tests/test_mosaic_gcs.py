"""`tessera mosaic` reading and writing gs:// through fake-gcs-server (gcsfs), and on
the DirectRunner with replayed bundles (retry safety)."""

from __future__ import annotations

import json
from pathlib import Path

import mosaic_helpers as S
import numpy as np
import pytest
import rasterio
from gcs_server import gcs_filesystem, use_emulator

from beam_pipelines.mosaic import run_mosaic


def _scenes() -> list:
    return [
        S.Scene("a", S.synthetic_classes(150, 150, 1), S.grid_transform(0, 0), "2024-01-01T00:00:00Z"),
        S.Scene("b", S.synthetic_classes(100, 100, 2), S.grid_transform(100, 60), "2024-02-01T00:00:00Z"),
    ]


def _tiles(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted(folder.glob("x*/classes.tif")):
        with rasterio.open(path) as ds:
            out[path.parent.name] = ds.read(1)
    return out


@pytest.mark.e2e
def test_gs_catalog_to_gs_mosaic_is_incremental(fake_gcs: str, tmp_path: Path) -> None:
    local = tmp_path / "local"
    S.write_scene_outputs(local, _scenes())
    fs = gcs_filesystem(fake_gcs)
    fs.mkdir("maps")
    fs.put(str(local) + "/", "maps/out", recursive=True)
    run_mosaic(str(local), str(local), tile_size=128)

    with use_emulator(fake_gcs):
        first = run_mosaic("gs://maps/out", "gs://maps/out", tile_size=128)
        again = run_mosaic("gs://maps/out", "gs://maps/out", tile_size=128)
    assert first.tiles_written == first.tiles == 4
    assert again.tiles_written == 0 and again.tiles_unchanged == 4

    fs.invalidate_cache()
    coll = json.loads(fs.cat_file("maps/out/landcover-mosaic/collection.json"))
    assert len([link for link in coll["links"] if link["rel"] == "item"]) == 4
    catalog = json.loads(fs.cat_file("maps/out/catalog.json"))
    assert any(link["href"] == "./landcover-mosaic/collection.json" for link in catalog["links"])
    manifest = json.loads(fs.cat_file(fs.glob("maps/out/landcover-mosaic/x*/manifest.json")[0]))
    assert all(i["classes"][2] for i in manifest["inputs"])  # GCS generation as the version
    remote = tmp_path / "remote"
    fs.get("maps/out/landcover-mosaic/", str(remote), recursive=True)
    expected = _tiles(local / "landcover-mosaic")
    got = _tiles(remote)
    assert got.keys() == expected.keys() and all(np.array_equal(got[k], expected[k]) for k in got)
    assert not [p for p in fs.find("maps/out") if ".tmp" in p]


@pytest.mark.e2e
def test_replayed_bundles_give_the_same_mosaic(tmp_path: Path) -> None:
    """Every bundle runs twice (as a retried worker would): same tiles, no temp files.
    (``--direct_running_mode=multi_processing`` also works, but costs ~40 s of worker
    start-up on two cores, so it is not part of the suite.)"""
    S.write_scene_outputs(tmp_path / "in", _scenes())
    run_mosaic(str(tmp_path / "in"), str(tmp_path / "ref"), tile_size=128)
    run_mosaic(str(tmp_path / "in"), str(tmp_path / "mp"), tile_size=128, beam_args=[
        "--direct_runner_bundle_repeat=1"])
    expected, got = _tiles(tmp_path / "ref" / "landcover-mosaic"), _tiles(tmp_path / "mp" / "landcover-mosaic")
    assert got.keys() == expected.keys() and all(np.array_equal(got[k], expected[k]) for k in got)
    assert (tmp_path / "mp" / "landcover-mosaic" / "collection.json").exists()
    assert not list((tmp_path / "mp").rglob("*.tmp-*"))
