"""`tessera infer` with gs:// input and output, against fake-gcs-server through gcsfs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from gcs_server import gcs_filesystem, use_emulator
from helpers import synthetic_scene

from beam_pipelines.infer import run_infer


@pytest.mark.e2e
def test_gs_scenes_to_gs_outputs(fake_gcs, tiny_bundle, tmp_path) -> None:
    fs = gcs_filesystem(fake_gcs)
    fs.mkdir("landing")
    fs.mkdir("results")
    local = {}
    for i, (h, w) in enumerate([(70, 45), (33, 90)]):
        path = tmp_path / f"scene{i}.tif"
        local[f"scene{i}"] = synthetic_scene(path, h, w, seed=i)
        fs.put_file(str(path), f"landing/incoming/scene{i}.tif")
        # and the same file locally, to compare against a local run
    with use_emulator(fake_gcs):
        report = run_infer(["gs://landing/incoming/scene0.tif", "gs://landing/incoming/scene1.tif"],
                           "gs://results/maps", model=tiny_bundle, tile_size=32)
    assert report.ok, report.failed
    assert sorted(report.succeeded) == ["landcover/scene0", "landcover/scene1"]

    fs.invalidate_cache()
    item = json.loads(fs.cat_file("results/maps/landcover/scene0/scene0.json"))
    assert item["properties"]["tessera:source"]["url"] == "gs://landing/incoming/scene0.tif"
    assert item["properties"]["tessera:source"]["generation"]  # GCS identity, not mtime
    catalog = json.loads(fs.cat_file("results/maps/catalog.json"))
    assert any(link["href"] == "./landcover/collection.json" for link in catalog["links"])
    assert not fs.exists("results/maps/.tessera-tmp")

    # the map read back from GCS equals the map of the same scene run from local disk
    local_out = tmp_path / "local"
    assert run_infer([str(tmp_path / "scene1.tif")], str(local_out), model=tiny_bundle, tile_size=32).ok
    remote_cog = tmp_path / "remote.tif"
    fs.get_file("results/maps/landcover/scene1/classes.tif", str(remote_cog))
    with rasterio.open(remote_cog) as a, rasterio.open(local_out / "landcover/scene1/classes.tif") as b:
        assert np.array_equal(a.read(1), b.read(1))
