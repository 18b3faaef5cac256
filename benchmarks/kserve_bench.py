"""In-process model vs the same bundle behind KServe on loopback: tiles/s and pixels/s.

``measure(scene_path, model_path, tile_size)`` cuts the first ``max_tiles`` tiles of the
scene exactly as the pipeline does (core ``T``, halo from the bundle, mirrored edges),
then times the same batches through ``BundleModelHandler`` in this process and through
``KServeModelHandler`` against ``tessera serve model`` started on 127.0.0.1. Pixels are
output pixels (tile cores clipped to the scene). Each path gets a warm-up batch and the
best of ``repeats`` passes, taken in alternation so that load from neighbours on a
shared machine hits both alike.

    python -m benchmarks.kserve_bench SCENE [MODEL] [TILE]
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from models.bundle import read_metadata, resolve_model_path
from tessera.ports import free_port
from transforms.core.grid import TileGrid, fill_model_input

REPO = Path(__file__).resolve().parent.parent


def cut_tiles(
    scene_path: str, tile_size: int, meta: Any, max_tiles: int
) -> tuple[list[np.ndarray], int, TileGrid]:
    """The first ``max_tiles`` model inputs of the scene, float32 (T+2h, T+2h, C), and
    the output pixels they own. Scene bands are taken in order and cycled if the scene
    has fewer than the model."""
    bands = len(meta.bands)
    with rasterio.open(scene_path) as ds:
        grid = TileGrid.for_model(
            ds.height, ds.width, tile_size, meta.receptive_field, meta.alignment
        )
        indexes = [1 + b % ds.count for b in range(bands)]
        tiles, pixels = [], 0
        for index in list(grid.indices())[:max_tiles]:
            read = ds.read(indexes, window=grid.read_window(index))
            side = grid.padded_size
            tiles.append(fill_model_input(np.moveaxis(read, 0, -1), grid, index,
                                          np.empty((side, side, bands), dtype=np.float32)))
            core = grid.core(index)
            pixels += int(core.width * core.height)
    return tiles, pixels, grid


def _run(
    handler: Any, model: Any, batches: list[list[np.ndarray]]
) -> tuple[float, list[np.ndarray]]:
    started = time.perf_counter()
    out: list[np.ndarray] = []
    for batch in batches:
        out.extend(handler.run_inference(batch, model))
    return time.perf_counter() - started, out


class PredictorProcess:
    """``tessera serve model`` on a free loopback port, started ahead of its use.

    Starting it is ~25 s of single-threaded imports (TensorFlow, KServe); the harness
    starts it before the memory runs, which measure RSS, not speed, so that time
    overlaps theirs instead of adding to the run."""

    def __init__(self, model_path: str | None) -> None:
        self.model_path = resolve_model_path(model_path)
        self.log = Path(tempfile.mkdtemp(prefix="tessera-kserve-bench-")) / "predictor.log"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "tessera", "serve", "model", "--model", self.model_path]
        cmd += ["--host", "127.0.0.1", "--port", str(port)]
        with open(self.log, "wb") as sink:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
        atexit.register(self.stop)  # whatever fails in between, no server outlives the bench

    def wait_ready(self, timeout_s: float = 600) -> None:
        import requests

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"predictor exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/v2/health/ready", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"predictor at {self.url} not ready after {timeout_s} s; log: {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start(model_path: str | None = None) -> PredictorProcess:
    """The predictor, started now for a later ``measure(..., predictor=...)``."""
    return PredictorProcess(model_path)


def measure(
    scene_path: str,
    model_path: str | None = None,
    tile_size: int | None = None,
    *,
    batch_size: int = 8,
    max_tiles: int = 48,
    repeats: int = 3,
    predictor: PredictorProcess | None = None,
) -> dict[str, Any]:
    """Tiles/s and pixels/s in-process vs through KServe on loopback, same scene and batches.

    ``predictor``: one already started for this bundle (see ``start``); stopped here."""
    from models.handlers import BundleModelHandler
    from models.kserve_handler import KServeModelHandler

    model_path = resolve_model_path(model_path)
    meta = read_metadata(model_path)
    tile = tile_size or meta.tile_size
    tiles, pixels, grid = cut_tiles(scene_path, tile, meta, max_tiles)
    batches = [tiles[i : i + batch_size] for i in range(0, len(tiles), batch_size)]

    if predictor is None or predictor.model_path != model_path:
        if predictor is not None:
            predictor.stop()
        predictor = PredictorProcess(model_path)
    try:
        local_handler = BundleModelHandler(model_path, max_batch_size=batch_size)
        local_model = local_handler.load_model()
        # (the predictor loads TF meanwhile)
        predictor.wait_ready()
        remote_handler = KServeModelHandler(
            predictor.url, meta.name, max_batch_size=batch_size, metadata=meta
        )
        remote_model = remote_handler.load_model()
        _run(local_handler, local_model, batches[:1])  # warm-up both
        _run(remote_handler, remote_model, batches[:1])
        local_s, remote_s = float("inf"), float("inf")
        for _ in range(repeats):
            seconds, local_out = _run(local_handler, local_model, batches)
            local_s = min(local_s, seconds)
            seconds, remote_out = _run(remote_handler, remote_model, batches)
            remote_s = min(remote_s, seconds)
        remote_model.close()
    finally:
        predictor.stop()
    diff = float(np.max(np.abs(np.stack(local_out) - np.stack(remote_out))))

    def rates(seconds: float) -> dict[str, float]:
        return {
            "seconds": round(seconds, 4),
            "tiles_per_s": round(len(tiles) / seconds, 2),
            "pixels_per_s": round(pixels / seconds, 1),
        }

    local, remote = rates(local_s), rates(remote_s)
    return {
        "scene": str(scene_path),
        "scene_size": [grid.height, grid.width],
        "model": model_path,
        "tile_size": tile,
        "halo": grid.halo,
        "model_input": [grid.padded_size, grid.padded_size, len(meta.bands)],
        "tiles": len(tiles),
        "pixels": pixels,
        "batch_size": batch_size,
        "cpu_count": os.cpu_count(),
        "inprocess": local,
        "kserve": remote,
        "ratio": round(remote["pixels_per_s"] / local["pixels_per_s"], 3),
        "max_abs_diff": diff,
        "transport": "V2 REST, binary tensors, one keep-alive connection, loopback",
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        sys.exit("usage: python -m benchmarks.kserve_bench SCENE [MODEL] [TILE]")
    print(
        json.dumps(
            measure(
                args[0], args[1] if len(args) > 1 else None, int(args[2]) if len(args) > 2 else None
            ),
            indent=2,
        )
    )
