"""``tessera demo``: drop scenes in a local "bucket" and watch maps appear.

The demo is configuration, not a second implementation: a folder stands in for the
landing bucket, the real watcher/admission/ledger/launcher path turns arrivals into
``tessera infer`` jobs (DirectRunner, in child processes), and the real mosaic
pipeline updates the mosaics after each scene. Scenes arrive one by one, as an
uploader would deliver them: the Landsat sample, overlapping synthetic SPOT-like
scenes (one of them announced twice, as at-least-once delivery does), and a corrupt
file. A second run in the same work dir finds nothing new.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_WORKDIR = "demo-output"
PRODUCTS = ["landsat-rgb", "landcover", "urban", "water"]
LANDSAT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "RGB.byte.tif"
SYNTH_SEED = 2026
SYNTH_SIZE = 640  # one synthetic acquisition, cut into overlapping scenes
SCENE_SIZE = 384
# The Landsat sample has non-square 300 m pixels: its mosaic needs an explicit grid.
MOSAIC_GRIDS: dict[str, dict[str, Any]] = {"landsat-rgb": {"crs": "EPSG:32618", "resolution": 300.0}}


@dataclass
class Delivery:
    name: str
    build: Any  # callable(path) writing the file
    redeliver: bool = False  # announce it twice (a duplicate delivery)


@dataclass
class Tally:
    arrivals: int = 0
    duplicates: int = 0
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    jobs: dict[str, str] = field(default_factory=dict)  # job id -> state
    job_errors: dict[str, str] = field(default_factory=dict)
    new_jobs: int = 0
    mosaic_tiles_written: int = 0


def _say(start: float, text: str) -> None:
    print(f"[{time.monotonic() - start:6.1f}s] {text}", flush=True)


def _synthetic_cuts() -> list[tuple[str, Any]]:
    """Overlapping SPOT-like scenes cut from one synthetic acquisition (same grid)."""
    from affine import Affine

    from models.synth import BANDS, encode_geotiff, synth_scene

    big = synth_scene(SYNTH_SEED, SYNTH_SIZE)
    offsets = {"spot-a": (0, 0), "spot-b": (0, SYNTH_SIZE - SCENE_SIZE), "spot-c": (SYNTH_SIZE - SCENE_SIZE, 128)}
    times = {"spot-a": "2026:05:01 10:30:00", "spot-b": "2026:06:12 10:41:00", "spot-c": "2026:07:23 10:52:00"}
    cuts = []
    for name, (r0, c0) in offsets.items():
        image = big.image[:, r0 : r0 + SCENE_SIZE, c0 : c0 + SCENE_SIZE]
        transform = big.transform * Affine.translation(c0, r0)

        def build(path: Path, image: Any = image, transform: Any = transform, when: str = times[name]) -> None:
            import rasterio

            path.write_bytes(encode_geotiff(image, transform, big.crs, 0, BANDS))
            with rasterio.open(path, "r+") as ds:  # acquisition time drives the `latest` policy
                ds.update_tags(TIFFTAG_DATETIME=when)

        cuts.append((name, build))
    return cuts


def deliveries() -> list[Delivery]:
    out = [Delivery("landsat-rgb-byte.tif", lambda p: shutil.copyfile(LANDSAT, p))]
    for i, (name, build) in enumerate(_synthetic_cuts()):
        out.append(Delivery(f"{name}.tif", build, redeliver=(i == 1)))
    out.append(Delivery("spot-corrupt.tif", lambda p: p.write_bytes(b"II*\x00" + b"\x17" * 4096)))
    return out


def _staged_tiles(output: Path) -> int:
    staging = output / ".tessera-tmp"
    return sum(1 for _ in staging.rglob("*.npy")) if staging.exists() else 0


def _wait_for_jobs(service: Any, launcher: Any, job_ids: list[str], tally: Tally, start: float, output: Path) -> None:
    """Show job state changes, and the tiles running jobs have staged, until all end."""
    last: dict[str, str] = {}
    shown_tiles, shown_at = -1, 0.0
    while True:
        for job_id in job_ids:
            job = service.ledger.get(job_id)
            if job is None or last.get(job_id) == job.state:
                continue
            last[job_id] = job.state
            tally.jobs[job_id] = job.state
            extra = ""
            if job.state == "failed":
                lines = (job.error or "").strip().splitlines()
                tally.job_errors[job_id] = lines[-1] if lines else "failed"
                extra = f": {tally.job_errors[job_id]}"
            _say(start, f"  job {job_id[:8]} {job.product:<11} {Path(job.url).name:<22} {job.state}{extra}")
        if launcher.pending() == 0 and all(last.get(j) in ("succeeded", "failed") for j in job_ids):
            return
        staged = _staged_tiles(output)
        if staged != shown_tiles and time.monotonic() - shown_at > 3 and staged:
            running = sum(1 for j in job_ids if last.get(j) == "running")
            _say(start, f"    {running} job(s) running: {staged} tile(s) inferred and staged")
            shown_tiles, shown_at = staged, time.monotonic()
        time.sleep(0.3)


def _class_areas(output: Path) -> dict[str, dict[str, float]]:
    """Class areas (km²) per product, summed over the mosaic tiles' Item properties."""
    areas: dict[str, dict[str, float]] = {}
    for coll in sorted(output.glob("*-mosaic/collection.json")):
        product = coll.parent.name.removesuffix("-mosaic")
        totals: dict[str, float] = {}
        for item_path in sorted(coll.parent.glob("*/*.json")):
            props = json.loads(item_path.read_text()).get("properties", {})
            for key in ("tessera:class_areas_m2", "tessera:areas_m2"):
                for name, value in (props.get(key) or {}).items():
                    totals[name] = totals.get(name, 0.0) + float(value) / 1e6
        areas[product] = totals
    return areas


def run_demo(workdir: Path, *, serve: bool, host: str, port: int, products: list[str] | None = None) -> int:
    from beam_pipelines.mosaic import run_mosaic
    from services.trigger.admission import Admitter
    from services.trigger.launchers import LocalLauncher
    from services.trigger.ledger import open_ledger
    from services.trigger.service import TriggerService
    from services.trigger.watch import Watcher

    start = time.monotonic()
    # the demo prints each outcome itself; the service's own warnings would repeat them
    logging.getLogger("services.trigger").setLevel(logging.ERROR)
    landing = workdir / "landing"
    output = workdir / "output"
    landing.mkdir(parents=True, exist_ok=True)
    output.mkdir(parents=True, exist_ok=True)
    _say(start, f"landing bucket: {landing}   outputs: {output}")
    launcher = LocalLauncher(str(output), max_workers=2)
    service = TriggerService(open_ledger(f"sqlite:///{workdir / 'ledger.db'}"), launcher,
                             Admitter.for_products(products or PRODUCTS))
    service.resume()
    watcher = Watcher(landing.as_uri(), service, settle_s=0.0)
    tally = Tally()
    try:
        for delivery in deliveries():
            target = landing / delivery.name
            if target.exists():
                _say(start, f"{delivery.name}: already in the bucket (earlier run)")
            else:
                tmp = landing / f".{delivery.name}.part"
                delivery.build(tmp)
                os.replace(tmp, target)  # objects appear whole, as on GCS
                _say(start, f"uploaded {delivery.name} ({target.stat().st_size / 1e6:.1f} MB)")
            results = watcher.poll_once()
            if delivery.redeliver:  # the notification arrives a second time
                results += [(a, service.handle(a)) for a, _ in results]
            new_ids: list[str] = []
            for arrival, outcome in results:
                tally.arrivals += 1
                name = Path(arrival.url).name
                if outcome.status == "duplicate":
                    tally.duplicates += 1
                    _say(start, f"  {name}: duplicate delivery of generation {arrival.generation}, ignored")
                elif outcome.status == "quarantined":
                    tally.quarantined.append((name, outcome.reason or ""))
                    _say(start, f"  {name}: QUARANTINED: {outcome.reason}")
                else:
                    ids = [j.id for j in outcome.jobs]
                    new_ids += ids
                    tally.new_jobs += len(ids)
                    _say(start, f"  {name}: admitted -> {len(ids)} job(s): "
                                + ", ".join(j.product for j in outcome.jobs))
            if not results:
                _say(start, f"  {delivery.name}: nothing new")
            if new_ids:
                _wait_for_jobs(service, launcher, new_ids, tally, start, output)
                for product in sorted({service.ledger.get(i).product for i in new_ids}):
                    report = run_mosaic(str(output), str(output), policy="latest", products=[product],
                                        **MOSAIC_GRIDS.get(product, {}))
                    tally.mosaic_tiles_written += report.tiles_written or 0
                    _say(start, f"  {product} mosaic: {report.tiles_written} tile(s) rewritten, "
                                f"{report.tiles_unchanged} unchanged")
    finally:
        service.close()
    _summary(workdir, output, tally, time.monotonic() - start)
    if serve:
        return _serve(output, host, port)
    return 0 if not tally.job_errors else 1


def _summary(workdir: Path, output: Path, tally: Tally, seconds: float) -> None:
    items = sorted(p for p in output.glob("*/*/*.json") if p.stem == p.parent.name)
    scene_items = [p for p in items if not p.parent.parent.name.endswith("-mosaic")]
    mosaic_tiles = [p for p in items if p.parent.parent.name.endswith("-mosaic")]
    succeeded = sum(1 for s in tally.jobs.values() if s == "succeeded")
    print("\n=== tessera demo summary ===")
    rows = [
        ("arrivals seen", tally.arrivals),
        ("jobs started this run", tally.new_jobs),
        ("jobs succeeded", succeeded),
        ("jobs failed", len(tally.job_errors)),
        ("duplicates ignored", tally.duplicates),
        ("quarantined", len(tally.quarantined)),
        ("STAC Items (scene x product)", len(scene_items)),
        ("mosaic tiles", len(mosaic_tiles)),
        ("mosaic tiles rewritten this run", tally.mosaic_tiles_written),
        ("time taken", f"{seconds:.1f} s"),
    ]
    for label, value in rows:
        print(f"  {label:<34} {value}")
    if tally.new_jobs == 0:
        print("  nothing new: no job started, no output changed")
    for name, reason in tally.quarantined:
        print(f"  quarantined {name}: {reason}")
    for job_id, error in tally.job_errors.items():
        print(f"  job {job_id[:8]} failed: {error}")
    areas = _class_areas(output)
    if areas:
        print("\n  class areas in the mosaics (km²):")
        for product, totals in areas.items():
            shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(totals.items()))
            print(f"    {product:<12} {shown or '-'}")
    print(f"\n  catalog:    {output / 'catalog.json'}")
    for coll in sorted(output.glob("*-mosaic/collection.json")):
        print(f"  mosaic:     {coll}")
    for quicklook in sorted(output.glob("*/*/quicklook.png"))[:8]:
        print(f"  quicklook:  {quicklook}")
    print(f"  ledger:     {workdir / 'ledger.db'}")


def _serve(output: Path, host: str, port: int) -> int:
    from services.products import app as products_app

    print(f"\nmap page: http://{host}:{port}/   (Ctrl-C to stop)", flush=True)
    try:
        return int(products_app.main(["--catalog", str(output), "--host", host, "--port", str(port)]) or 0)
    except KeyboardInterrupt:
        return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tessera demo", description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR, help=f"work dir (default: ./{DEFAULT_WORKDIR})")
    parser.add_argument("--no-serve", action="store_true", help="do not start the map page at the end")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--products", nargs="+", default=PRODUCTS, metavar="P",
                        help=f"products to make (default: {' '.join(PRODUCTS)})")
    args = parser.parse_args(argv)
    if not LANDSAT.exists():
        print(f"tessera demo: the sample scene {LANDSAT} is missing", file=sys.stderr)
        return 2
    return run_demo(Path(args.workdir).resolve(), serve=not args.no_serve, host=args.host, port=args.port,
                    products=args.products)
