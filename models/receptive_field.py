"""Measure what a network's outputs depend on, instead of typing it in.

``receptive_field`` is the odd width of the input neighbourhood an output pixel
depends on; ``alignment`` is the product of the network's downsampling strides. Both
go into the bundle metadata and decide the tile halo (DESIGN.md "Tiling").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def measure_receptive_field(
    predict: Callable[[np.ndarray], np.ndarray],
    bands: int,
    alignment: int,
    *,
    size: int | None = None,
    trials: int = 3,
    seed: int = 0,
    scale: float = 1000.0,
) -> int:
    """Perturb one input pixel and see how far the outputs move.

    ``predict`` maps float32 ``[1, S, S, C]`` to ``[1, S, S, K]``. The pixel sits at
    the centre of a random input (several trials, so no dead unit hides a dependency);
    the radius is the farthest output pixel whose value changed, and the result is
    ``2 * radius + 1``. ``size`` must comfortably exceed the field.
    """
    size = size or 16 * alignment * 2
    size += (-size) % alignment
    rng = np.random.default_rng(seed)
    radius = 0
    centre = size // 2
    for _ in range(trials):
        base = rng.uniform(0, scale, (1, size, size, bands)).astype(np.float32)
        poked = base.copy()
        poked[0, centre, centre, :] += scale
        diff = np.abs(predict(poked) - predict(base)).max(axis=(0, 3))
        rows, cols = np.nonzero(diff > 0)
        if rows.size == 0:
            continue
        radius = max(radius, int(np.abs(rows - centre).max()), int(np.abs(cols - centre).max()))
    if radius * 2 + 1 >= size:
        raise ValueError(f"receptive field reaches the probe's edge ({size} px); pass a larger size")
    return 2 * radius + 1
