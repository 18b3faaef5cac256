"""`tessera bench` pieces on a small scene: the baselines are fair (the hand loop's
classes equal tessera's), the harness's summary has its keys, memory is measured."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from benchmarks import baselines, harness, memory
from benchmarks.scenes import make_scene
from models.bundle import read_metadata


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory: pytest.TempPathFactory) -> str:
    # 200 x 200 with tile 64: partial edge tiles, so the mirroring at the scene's
    # right/bottom edge is exercised where a naive np.pad of the window would differ.
    cache = tmp_path_factory.mktemp("bench-scenes")
    return str(make_scene(cache, 200, kind="textured", seed=3))


def _classes(path: Path | str) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_mirror_matches_numpy_reflect() -> None:
    for size in (1, 2, 5, 17):
        axis = np.arange(size)
        for pad in (0, 1, 3, 20):
            expected = np.pad(axis, pad, mode="reflect") if size > 1 else np.zeros(size + 2 * pad, int)
            assert np.array_equal(baselines.mirror(-pad, size + pad, size), expected)


@pytest.mark.e2e
def test_hand_loop_and_runinference_equal_tessera(small_scene: str, tiny_bundle: str, tmp_path: Path) -> None:
    """The fairness check: the user scripts produce tessera's classes, pixel for pixel."""
    started = time.perf_counter()
    meta = read_metadata(tiny_bundle)
    tile = 64
    cfg = harness.BenchConfig(quick=True, output=tmp_path, json_path=None, model=tiny_bundle)
    tessera = harness.run_tessera(small_scene, tmp_path / "tessera", cfg, tile, batch=1)
    assert tessera["seconds"] > 0
    reference = _classes(harness.tessera_classes_path(tmp_path / "tessera", small_scene))

    hand = baselines.hand_loop(small_scene, tiny_bundle, str(tmp_path / "hand.tif"), tile=tile,
                               halo=meta.halo, batch_size=1)
    assert hand["pixels"] == 200 * 200
    assert np.array_equal(_classes(hand["output"]), reference)

    ri = baselines.beam_runinference(small_scene, tiny_bundle, str(tmp_path / "ri.tif"), tile=tile,
                                     halo=meta.halo, batch_size=1)
    assert np.array_equal(_classes(ri["output"]), reference)

    # overlap-and-average is a different (approximate) stitching: mostly, not exactly, equal
    ov = baselines.overlap_average(small_scene, tiny_bundle, str(tmp_path / "ov.tif"), tile=tile, batch_size=1)
    agree = float(np.mean(_classes(ov["output"]) == reference))
    assert 0.5 < agree <= 1.0
    assert time.perf_counter() - started < 90


def test_limit_tiles_cover_the_scene(small_scene: str, tmp_path: Path) -> None:
    scene = str(make_scene(tmp_path, 128, kind="cheap"))
    tiles = harness.cut_tiles(scene, 64)
    with rasterio.open(scene) as ds:
        data = np.moveaxis(ds.read(), 0, -1).astype(np.float32)
    assert tiles.shape == (4, 64, 64, 4)
    assert np.array_equal(tiles[1], data[:64, 64:128])
    assert np.array_equal(tiles[2], data[64:128, :64])


def test_choose_tile_keeps_halo_overhead_small() -> None:
    assert harness.choose_tile(12, 4, quick=True) == 1024  # 512 would be 1.096
    assert harness.choose_tile(48, 8, quick=False) == 4096
    assert harness.choose_tile(48, 8, quick=True) == 3072  # halo overhead 1.063
    assert harness.scene_side_for(1e6, 512, quick=True) % 512 == 0
    # the quick scene is fixed for tiles of 3072 (no probe); smaller tiles are sized by the probe
    assert harness.fixed_scene_side(3072, quick=True) == 6144
    assert harness.fixed_scene_side(1024, quick=True) is None
    assert harness.fixed_scene_side(4096, quick=False) == 12288


@pytest.mark.e2e
def test_memory_of_a_tessera_infer_subprocess(tiny_bundle: str, tmp_path: Path) -> None:
    scene = str(make_scene(tmp_path, 128, kind="cheap"))
    summary = memory.measure_sizes({128: scene}, tmp_path, model=tiny_bundle, tile_size=64, batch_size=1)
    run = summary["runs"]["128"]
    assert run["exit_code"] == 0, run["log_tail"]
    assert 50 < run["peak_rss_mib"] < 8000
    assert run["peak_tree_rss_mib"] >= 0.5 * run["peak_rss_mib"]


def test_report_and_json_keys(tmp_path: Path) -> None:
    """write_report + cost_model on a canned summary: the keys the lead's tooling reads."""
    from benchmarks.report import cost_model, write_report

    thr = {
        "scene": "s.tif", "scene_side": 1024, "pixels": 1024**2, "tile_size": 512, "halo": 12,
        "halo_overhead": 1.096, "batch_size": 1, "repeats": 2,
        "seconds": {k: [2.0, 2.2] for k in ("limit", "tessera", "hand_loop", "runinference", "overlap_average")},
        "pixels_per_s": {k: 5e5 for k in ("limit", "tessera", "hand_loop", "runinference", "overlap_average")},
        "efficiency": 0.9, "vs_hand_loop": 1.1, "vs_overlap_average": 2.0, "vs_runinference": 1.2,
        "per_repeat": {k: [1.0, 1.0] for k in ("efficiency", "vs_hand_loop", "vs_overlap_average", "vs_runinference")},
        "agreement_with_tessera": {"hand_loop": 1.0}, "hub_note": [],
    }
    run = {"peak_rss_mib": 900.0, "peak_tree_rss_mib": 900.0, "seconds": 10.0, "exit_code": 0,
           "rss_timeline": [(0.0, 1000), (1.0, 900000)]}
    summary = {
        "quick": True,
        "machine": {"cpu_model": "cpu", "cores": 2, "memory_gib": 8, "gpu": [], "date": "2026-01-01T00:00:00",
                    "load_average_start": [1, 1, 1], "load_average_end": [1, 1, 1], "python": "3.11",
                    "tensorflow": "x", "apache_beam": "x", "gdal": "x", "gdal_cachemax_bytes": 1},
        "model": {"name": "m", "version": "v", "architecture": "a", "receptive_field": 23, "alignment": 4, "halo": 12},
        "tile_size": 512, "batch_size": 1, "efficiency": 0.9, "vs_hand_loop": 1.1, "vs_overlap_average": 2.0,
        "vs_runinference": 1.2, "rss_mib": {"2048": 900.0, "8192": 950.0}, "rss_ratio": 1.05,
        "startup_seconds": 1.0, "throughput": thr,
        "fixed_cost": {"one_tile_scene_seconds": 2.0, "fixed_seconds": 1.0, "share_of_tessera_run": 0.5},
        "memory": {"runs": {"2048": run, "8192": run}, "model_name": "light", "tile_size": 512, "batch_size": 1},
        "scaling": {"runs": {"1": [run], "2": [run]}, "pixels_per_s": {"1": 1.0, "2": 1.5}},
        "kserve": {"skipped": "absent"}, "trigger": {"error": "boom"}, "timings_seconds": {"total": 1.0},
    }
    summary["cost_model"] = cost_model(summary, 40.0)
    path = write_report(summary, tmp_path)
    text = path.read_text()
    for needle in ("efficiency", "vs_hand_loop", "rss_ratio", "Cost model", "assumption", "cpu, 2 cores"):
        assert needle in text
    assert (tmp_path / "throughput.png").stat().st_size > 1000
    assert (tmp_path / "memory.png").exists()
    assert (tmp_path / "cost_model.md").exists()
    json.dumps(summary, default=str)
    gpu = summary["cost_model"]["gpu"]
    assert gpu["needed_pixels_per_s_per_gpu_for_1h_on_8"] == pytest.approx(2.4e11 / 8 / 3600)
