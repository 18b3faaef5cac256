"""Seamless by construction: tiled output == the model once on the whole scene.

The tiled path here is the pipeline's own core (grid, mirrored reads, crop); the
reference is DESIGN.md's: the SavedModel on the reflect-padded whole scene.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import reference_probabilities
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.bundle import read_metadata
from models.handlers import BundleModelHandler
from transforms.core.grid import TileGrid, fill_model_input

LEVELS = [0, 1, 3]  # alignments 1, 2, 8 (the tiny_bundle fixture adds alignment 4)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: str) -> dict[int, tuple]:
    from models.reference import export_reference

    out = {}
    paths = [tiny_bundle]
    for levels in LEVELS:
        path = tmp_path_factory.mktemp("exact") / f"l{levels}"
        export_reference(str(path), levels=levels, tile_size=2**levels * 4, seed=levels)
        paths.append(str(path))
    for path in paths:
        meta = read_metadata(path)
        out[meta.alignment] = (meta, BundleModelHandler(path).load_model())
    return out


def tiled_probabilities(predict, scene: np.ndarray, grid: TileGrid) -> np.ndarray:
    out = None
    for index in grid.indices():
        window = grid.read_window(index)
        read = scene[:, window.row_off : window.row_off + window.height, window.col_off : window.col_off + window.width]
        side = grid.padded_size
        tile = fill_model_input(np.moveaxis(read, 0, -1), grid, index, np.empty((side, side, read.shape[0]), np.float32))[None]
        probs = predict(tile)[0]
        if out is None:
            out = np.zeros((grid.height, grid.width, probs.shape[-1]), np.float32)
        rows, cols = grid.crop_slices(index)
        core = grid.core(index)
        out[core.row_off : core.row_off + core.height, core.col_off : core.col_off + core.width] = probs[rows, cols]
    return out


@given(
    alignment=st.sampled_from([1, 2, 4, 8]),
    height=st.integers(1, 70),
    width=st.integers(1, 70),
    tile_mult=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_tiled_equals_whole_scene(bundles, alignment, height, width, tile_mult, seed) -> None:
    meta, predict = bundles[alignment]
    rng = np.random.default_rng(seed)
    scene = rng.uniform(0, 3000, (len(meta.bands), height, width)).astype(np.float32)
    grid = TileGrid(height, width, alignment * tile_mult, meta.halo, alignment)
    tiled = tiled_probabilities(predict, scene, grid)
    whole = reference_probabilities(predict, scene, meta.halo, alignment)
    assert np.abs(tiled - whole).max() <= 1e-4
    assert np.array_equal(tiled.argmax(-1), whole.argmax(-1))


def test_too_small_halo_is_caught(bundles) -> None:
    """The comparison can fail: with no halo, borders differ."""
    meta, predict = bundles[4]
    scene = np.random.default_rng(1).uniform(0, 3000, (4, 64, 64)).astype(np.float32)
    grid = TileGrid(64, 64, 16, 0, 4)
    diff = np.abs(tiled_probabilities(predict, scene, grid) - reference_probabilities(predict, scene, meta.halo, 4))
    assert diff.max() > 1e-3
