"""Window arithmetic: ownership, mirroring and halos (pure numpy, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.core.errors import ConfigError
from transforms.core.grid import (
    TileGrid,
    TileIndex,
    expand_window,
    fill_model_input,
    halo_for,
    reflect_indices,
)

sizes = st.integers(min_value=1, max_value=97)
alignments = st.sampled_from([1, 2, 4, 8])


@given(rf=st.integers(1, 99).map(lambda v: v | 1), alignment=alignments)
def test_halo_is_smallest_aligned_cover(rf: int, alignment: int) -> None:
    h = halo_for(rf, alignment)
    assert h % alignment == 0
    assert h >= (rf - 1) // 2
    assert h - alignment < (rf - 1) // 2


@given(size=sizes, before=st.integers(0, 200), after=st.integers(0, 200))
def test_reflect_indices_match_numpy_pad(size: int, before: int, after: int) -> None:
    axis = np.arange(size)
    expected = np.pad(axis, (before, after), mode="reflect")
    assert np.array_equal(reflect_indices(-before, size + after, size), expected)


@given(h=sizes, w=sizes, tile_mult=st.integers(1, 6), alignment=alignments)
@settings(max_examples=60, deadline=None)
def test_every_pixel_owned_by_exactly_one_tile(h: int, w: int, tile_mult: int, alignment: int) -> None:
    grid = TileGrid(h, w, tile_mult * alignment, alignment, alignment)
    owners = np.zeros((h, w), dtype=int)
    for index in grid.indices():
        core = grid.core(index)
        owners[core.row_off : core.row_off + core.height, core.col_off : core.col_off + core.width] += 1
        rows, cols = grid.crop_slices(index)
        assert rows.stop - rows.start == core.height and cols.stop - cols.start == core.width
    assert (owners == 1).all()


@given(h=sizes, w=sizes, tile_mult=st.integers(1, 4), alignment=alignments, halo_mult=st.integers(0, 3))
@settings(max_examples=60, deadline=None)
def test_tile_input_equals_slice_of_reflect_padded_scene(
    h: int, w: int, tile_mult: int, alignment: int, halo_mult: int
) -> None:
    grid = TileGrid(h, w, tile_mult * alignment, halo_mult * alignment, alignment)
    scene = np.arange(2 * h * w, dtype=np.float32).reshape(2, h, w)
    pad = grid.halo + grid.tile  # wide enough for any edge tile
    padded = np.pad(scene, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    for index in grid.indices():
        window = grid.read_window(index)
        assert window.row_off >= 0 and window.row_off + window.height <= h
        assert window.col_off >= 0 and window.col_off + window.width <= w
        read = scene[:, window.row_off : window.row_off + window.height, window.col_off : window.col_off + window.width]
        tile = expand_window(read, grid, index)
        p = grid.padded(index)
        expected = padded[:, p.row_off + pad : p.row_off + pad + p.height, p.col_off + pad : p.col_off + pad + p.width]
        assert tile.shape == (2, grid.padded_size, grid.padded_size)
        assert np.array_equal(tile, expected)


def test_tile_size_must_follow_alignment() -> None:
    with pytest.raises(ConfigError, match="multiple of the model's alignment 8"):
        TileGrid(100, 100, 60, 8, 8)
    with pytest.raises(ConfigError):
        halo_for(4, 2)


def test_outside_index_is_rejected() -> None:
    grid = TileGrid(10, 10, 4, 0, 1)
    with pytest.raises(ConfigError):
        grid.core(TileIndex(3, 0))


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    tile=st.sampled_from([1, 2, 4, 8, 16]),
    halo=st.sampled_from([0, 1, 3, 8, 50]),
    data=st.data(),
)
def test_fill_model_input_equals_expand_window(height: int, width: int, tile: int, halo: int, data) -> None:
    """The strided, casting fill the reader uses equals the gathered mirror, run for run."""
    grid = TileGrid(height, width, tile, halo)
    index = data.draw(st.sampled_from(list(grid.indices())))
    scene = np.arange(3 * height * width, dtype=np.uint16).reshape(3, height, width)
    window = grid.read_window(index)
    read = scene[:, window.row_off : window.row_off + window.height, window.col_off : window.col_off + window.width]
    expected = np.moveaxis(expand_window(read, grid, index), 0, -1).astype(np.float32)
    side = grid.padded_size
    got = fill_model_input(np.moveaxis(read, 0, -1), grid, index, np.empty((side, side, 3), dtype=np.float32))
    assert np.array_equal(got, expected)
