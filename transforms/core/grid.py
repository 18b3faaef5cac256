"""Where tiles get cut: the tile grid, halos and window arithmetic, in one module.

The grid is anchored at the scene's pixel (0, 0). Tile (row, col) owns the output
pixels ``[row*T, (row+1)*T) x [col*T, (col+1)*T)`` clipped to the scene, and the
model sees that core grown by a halo ``h`` on every side, always ``T + 2h`` square.
Pixels outside the scene are mirrored across the scene edge exactly as
``numpy.pad(scene, mode="reflect")`` would on the whole scene, so the tiled output
equals the model run once on the whole (reflect-padded) scene.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from transforms.core.errors import ConfigError


def halo_for(receptive_field: int, alignment: int) -> int:
    """The smallest multiple of ``alignment`` that is ``>= (receptive_field - 1) / 2``."""
    if receptive_field < 1 or receptive_field % 2 == 0:
        raise ConfigError(f"receptive_field must be a positive odd number, got {receptive_field}")
    if alignment < 1:
        raise ConfigError(f"alignment must be >= 1, got {alignment}")
    radius = (receptive_field - 1) // 2
    return -(-radius // alignment) * alignment


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def reflect_indices(start: int, stop: int, size: int) -> np.ndarray:
    """Source indices for positions ``start..stop-1`` of an axis of ``size`` pixels,
    mirrored across the edges like ``numpy.pad(mode="reflect")`` (edge not repeated),
    including pads wider than the axis (the reflection repeats with period 2(size-1))."""
    positions = np.arange(start, stop, dtype=np.int64)
    if size == 1:
        return np.zeros_like(positions)
    period = 2 * (size - 1)
    folded = np.mod(positions, period)
    return np.where(folded >= size, period - folded, folded)


@dataclass(frozen=True, order=True)
class TileIndex:
    """A tile's position in its grid; immutable and hashable, used as a key."""

    row: int
    col: int

    def __str__(self) -> str:
        return f"r{self.row:05d}c{self.col:05d}"


@dataclass(frozen=True)
class TileGrid:
    """The tiling of one ``height x width`` scene with core size ``tile`` and ``halo``."""

    height: int
    width: int
    tile: int
    halo: int
    alignment: int = 1

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ConfigError(f"scene size must be positive, got {self.height}x{self.width}")
        if self.alignment < 1:
            raise ConfigError(f"alignment must be >= 1, got {self.alignment}")
        if self.tile < 1 or self.tile % self.alignment:
            raise ConfigError(
                f"tile size {self.tile} must be a positive multiple of the model's "
                f"alignment {self.alignment}; try --tile-size {round_up(max(self.tile, 1), self.alignment)}"
            )
        if self.halo < 0 or self.halo % self.alignment:
            raise ConfigError(f"halo {self.halo} must be a multiple of alignment {self.alignment}")

    @classmethod
    def for_model(
        cls, height: int, width: int, tile: int, receptive_field: int, alignment: int
    ) -> TileGrid:
        return cls(height, width, tile, halo_for(receptive_field, alignment), alignment)

    @property
    def rows(self) -> int:
        return -(-self.height // self.tile)

    @property
    def cols(self) -> int:
        return -(-self.width // self.tile)

    @property
    def count(self) -> int:
        return self.rows * self.cols

    @property
    def padded_size(self) -> int:
        """Side of every array the model sees: ``T + 2h``."""
        return self.tile + 2 * self.halo

    def indices(self) -> Iterator[TileIndex]:
        for row in range(self.rows):
            for col in range(self.cols):
                yield TileIndex(row, col)

    def core(self, index: TileIndex) -> Window:
        """The output pixels the tile owns, clipped to the scene."""
        self._check(index)
        row_off, col_off = index.row * self.tile, index.col * self.tile
        return Window(
            col_off,
            row_off,
            min(self.tile, self.width - col_off),
            min(self.tile, self.height - row_off),
        )

    def padded(self, index: TileIndex) -> Window:
        """The model's input window, which may reach outside the scene."""
        self._check(index)
        return Window(
            index.col * self.tile - self.halo,
            index.row * self.tile - self.halo,
            self.padded_size,
            self.padded_size,
        )

    def source_indices(self, index: TileIndex) -> tuple[np.ndarray, np.ndarray]:
        """Mirrored scene rows and columns that fill the padded window."""
        window = self.padded(index)
        rows = reflect_indices(window.row_off, window.row_off + window.height, self.height)
        cols = reflect_indices(window.col_off, window.col_off + window.width, self.width)
        return rows, cols

    def read_window(self, index: TileIndex) -> Window:
        """The smallest in-scene window covering every source pixel of the tile."""
        rows, cols = self.source_indices(index)
        r0, c0 = int(rows.min()), int(cols.min())
        return Window(c0, r0, int(cols.max()) - c0 + 1, int(rows.max()) - r0 + 1)

    def crop_slices(self, index: TileIndex) -> tuple[slice, slice]:
        """Slices of the model output (``T + 2h`` square) that hold the owned core."""
        core = self.core(index)
        return (
            slice(self.halo, self.halo + core.height),
            slice(self.halo, self.halo + core.width),
        )

    def _check(self, index: TileIndex) -> None:
        if not (0 <= index.row < self.rows and 0 <= index.col < self.cols):
            raise ConfigError(f"tile {index} is outside a {self.rows}x{self.cols} grid")


def expand_window(read: np.ndarray, grid: TileGrid, index: TileIndex) -> np.ndarray:
    """Turn the pixels of ``grid.read_window(index)`` (bands first) into the full
    mirrored ``(bands, T+2h, T+2h)`` model input."""
    rows, cols = grid.source_indices(index)
    window = grid.read_window(index)
    local_rows = rows - int(window.row_off)
    local_cols = cols - int(window.col_off)
    if read.shape[-2:] == (grid.padded_size, grid.padded_size) and (
        np.array_equal(local_rows, np.arange(grid.padded_size))
        and np.array_equal(local_cols, np.arange(grid.padded_size))
    ):
        return read
    return read[..., local_rows[:, None], local_cols[None, :]]


def index_runs(indices: np.ndarray) -> list[tuple[slice, slice]]:
    """Split a 1-D index array into ``(destination, source)`` slice pairs, one per run of
    consecutive indices going up or down (a mirrored axis is at most a few runs)."""
    runs: list[tuple[slice, slice]] = []
    n, start = len(indices), 0
    while start < n:
        step = int(indices[start + 1] - indices[start]) if start + 1 < n else 1
        if step not in (1, -1):
            step = 1
        stop = start + 1
        while stop < n and indices[stop] - indices[stop - 1] == step:
            stop += 1
        first, last = int(indices[start]), int(indices[stop - 1])
        source = slice(first, last + 1) if step == 1 else slice(first, last - 1 if last > 0 else None, -1)
        runs.append((slice(start, stop), source))
        start = stop
    return runs


def fill_model_input(read: np.ndarray, grid: TileGrid, index: TileIndex, out: np.ndarray) -> np.ndarray:
    """Write the tile's mirrored input into ``out`` (``(T+2h, T+2h, C)``, in ``out``'s
    dtype) from ``read``, the pixels of ``grid.read_window(index)`` laid out
    ``(h, w, C)``: one casting copy per mirrored run, no gathered temporary. It equals
    ``moveaxis(expand_window(moveaxis(read, -1, 0), grid, index), 0, -1)``."""
    rows, cols = grid.source_indices(index)
    window = grid.read_window(index)
    row_runs = index_runs(rows - int(window.row_off))
    col_runs = index_runs(cols - int(window.col_off))
    for dst_r, src_r in row_runs:
        for dst_c, src_c in col_runs:
            out[dst_r, dst_c, :] = read[src_r, src_c, :]
    return out

