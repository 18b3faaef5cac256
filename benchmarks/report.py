"""The benchmark report: Markdown + PNG plots from the harness's JSON summary, and the
cost model for mainland France (also written to ``cost_model.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FRANCE_PIXELS = 2.4e11
GPUS, HOURS = 8, 1.0


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "n/a"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {suffix}{unit}"
    return f"{x:.3g} {unit}".strip()


def cost_model(summary: dict[str, Any], gpu_speedup: float) -> dict[str, Any]:
    """Worker-hours and GPU-hours for ~2.4e11 output pixels from the measured rates.

    Every number not measured here is a named assumption in the returned dict.
    """
    thr = summary["throughput"]
    machine = summary["machine"]
    limit = thr["pixels_per_s"]["limit"]
    tessera = thr["pixels_per_s"]["tessera"]
    halo = thr["halo_overhead"]
    # Wall seconds per output pixel the 2-core worker spends outside the bare forward pass
    # (halo recompute excluded): reads, mirroring, crop, staging, finalise, Beam.
    overhead_s_per_px = max(0.0, 1 / tessera - halo / limit)
    gpu_rate = limit * gpu_speedup
    gpu_effective = gpu_rate / halo
    need_per_gpu = FRANCE_PIXELS / (GPUS * HOURS * 3600)
    cores = machine["cores"]
    out = {
        "pixels": FRANCE_PIXELS,
        "measured": {
            "limit_pixels_per_s": limit,
            "tessera_pixels_per_s": tessera,
            "halo_overhead": halo,
            "worker": f"{cores} cores, {machine['cpu_model']}",
            "non_model_seconds_per_pixel": overhead_s_per_px,
        },
        "assumptions": {
            "gpu_speedup_over_this_machine_limit": gpu_speedup,
            "gpu_speedup_is_measured": False,
            "gpu_pipeline_efficiency": "halo overhead only (input/outputs overlapped by CPU workers)",
            "input_bytes_per_pixel": 8,  # 4 bands uint16
            "output_bytes_per_pixel": 2,  # classes + confidence, before compression
        },
        "cpu_only": {
            "worker_hours": FRANCE_PIXELS / tessera / 3600,
            "workers_for_one_hour": FRANCE_PIXELS / tessera / 3600,
        },
        "gpu": {
            "gpu_pixels_per_s_assumed": gpu_effective,
            "gpu_hours": FRANCE_PIXELS / gpu_effective / 3600,
            "hours_on_8_gpus": FRANCE_PIXELS / gpu_effective / 3600 / GPUS,
            "needed_pixels_per_s_per_gpu_for_1h_on_8": need_per_gpu,
            "needed_speedup_over_this_machine_limit": need_per_gpu * halo / limit,
            "cpu_workers_to_feed_8_gpus_at_that_rate": GPUS * need_per_gpu * overhead_s_per_px,
            "input_read_mb_per_s_for_1h": FRANCE_PIXELS * 8 / 3600 / 1e6,
            "float32_tensor_mb_per_s_per_gpu": need_per_gpu * halo * 16 / 1e6,  # 4 bands x float32
        },
    }
    return out


def cost_model_markdown(cm: dict[str, Any], summary: dict[str, Any]) -> str:
    m, a, g, c = cm["measured"], cm["assumptions"], cm["gpu"], cm["cpu_only"]
    machine = summary["machine"]
    return "\n".join([
        "## Cost model: mainland France at 1.5 m (~2.4e11 output pixels)",
        "",
        f"Measured on {machine['cpu_model']}, {machine['cores']} cores, {machine['date']} "
        f"(model `{summary['model']['name']}` {summary['model']['version']}, tile {summary['tile_size']}, "
        f"halo {summary['model']['halo']}).",
        "",
        "| quantity | value | source |",
        "|---|---|---|",
        f"| bare forward pass, this worker | {_fmt(m['limit_pixels_per_s'], 'px/s')} | measured (limit) |",
        f"| tessera end to end, this worker | {_fmt(m['tessera_pixels_per_s'], 'px/s')} | measured |",
        f"| halo overhead (T+2h)^2/T^2 | {m['halo_overhead']:.3f} | geometry |",
        f"| non-model work per output pixel | {m['non_model_seconds_per_pixel'] * 1e6:.3f} worker-us | "
        "measured: 1/tessera - halo/limit |",
        f"| CPU only: worker-hours ({machine['cores']}-core workers) | {c['worker_hours']:,.0f} | "
        "2.4e11 / tessera rate |",
        f"| CPU only: workers to finish in 1 h | {c['workers_for_one_hour']:,.0f} | same |",
        f"| GPU forward-pass speed-up over this worker's limit | {a['gpu_speedup_over_this_machine_limit']:g}x | "
        "**assumption** (not measured: no GPU in this run) |",
        f"| GPU-hours at that speed-up | {g['gpu_hours']:,.1f} | 2.4e11 x halo / (limit x speed-up) |",
        f"| hours on 8 GPUs at that speed-up | {g['hours_on_8_gpus']:,.2f} | same / 8 |",
        f"| needed per GPU for < 1 h on 8 | {_fmt(g['needed_pixels_per_s_per_gpu_for_1h_on_8'], 'px/s')} | "
        "2.4e11 / (8 x 3600) |",
        f"| needed speed-up over this worker's limit | {g['needed_speedup_over_this_machine_limit']:,.0f}x | "
        "that / limit x halo |",
        f"| CPU workers to feed 8 GPUs at that rate | {g['cpu_workers_to_feed_8_gpus_at_that_rate']:,.0f} | "
        "8 x rate x non-model work per pixel |",
        f"| scene reads for 1 h | {g['input_read_mb_per_s_for_1h']:,.0f} MB/s | 8 B/px (4 x uint16), "
        "uncompressed |",
        "",
        "Reading the table: the GPU side of \"under one hour on 8 GPUs\" needs a per-GPU forward "
        "pass at the rate above, which for this bundle is plausible on a modern GPU only if the "
        "assumed speed-up holds (measure it: `tessera bench` on a GPU machine prints the limit). "
        "The CPU side is the harder half: reads, mirroring, cropping, staging and the per-scene "
        "COG assembly must run on separate workers (Dataflow CPU workers calling KServe, or GPU "
        "workers with many CPU cores each) at the worker count shown, and the tensors must "
        "cross to the GPU as float32 at the bandwidth implied. Egress is zero if the buckets, "
        "workers and GPU node pool share a region; otherwise every input byte is egress.",
        "",
    ])


def _plots(summary: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    machine = summary["machine"]
    where = f"{machine['cpu_model']}, {machine['cores']} cores, {machine['date'][:10]}"
    files = []
    thr = summary["throughput"]
    names = ["limit", "tessera", "hand_loop", "runinference", "overlap_average"]
    rates = [thr["pixels_per_s"][n] / 1e6 for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bars = ax.bar(names, rates, color=["#888888", "#d7301f", "#2b8cbe", "#31a354", "#525252"])
    ax.bar_label(bars, fmt="%.2f")
    ax.set_ylabel("output Mpixel/s (median)")
    ax.set_title(f"{thr['scene_side']}^2 scene, tile {thr['tile_size']}, batch {thr['batch_size']}, "
                 f"{thr['repeats']} repeats\n{where}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)
    files.append("throughput.png")

    runs = {int(k): v for k, v in summary["memory"]["runs"].items() if v.get("exit_code") == 0}
    if runs:
        sides = sorted(runs)
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.4))
        a1.plot(sides, [runs[s]["peak_rss_mib"] for s in sides], "o-", label="ru_maxrss (process)")
        a1.plot(sides, [runs[s]["peak_tree_rss_mib"] for s in sides], "s--", label="process tree (polled)")
        a1.set_xscale("log", base=2)
        a1.set_ylim(bottom=0)
        a1.set_xlabel("scene side (px)")
        a1.set_ylabel("peak RSS (MiB)")
        a1.legend(fontsize=7)
        a2.plot(sides, [runs[s]["seconds"] for s in sides], "o-")
        a2.set_xscale("log", base=2)
        a2.set_yscale("log")
        a2.set_xlabel("scene side (px)")
        a2.set_ylabel("wall time (s)")
        fig.suptitle(f"tessera infer, model {summary['memory']['model_name']}, tile "
                     f"{summary['memory']['tile_size']} - {where}", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "memory.png", dpi=110)
        plt.close(fig)
        files.append("memory.png")
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for s in sides:
            tl = runs[s].get("rss_timeline") or []
            if tl:
                ax.plot([t for t, _ in tl], [kb / 1024 for _, kb in tl], label=f"{s}^2")
        ax.set_xlabel("s since start")
        ax.set_ylabel("RSS of process tree (MiB)")
        ax.legend(fontsize=7)
        ax.set_title(f"RSS over time - {where}", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "memory_timeline.png", dpi=110)
        plt.close(fig)
        files.append("memory_timeline.png")
    return files


def _table(rows: list[list[str]], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_report(summary: dict[str, Any], out: Path) -> Path:
    plots = _plots(summary, out)
    m, thr, mem = summary["machine"], summary["throughput"], summary["memory"]
    fixed = summary["fixed_cost"]
    cm_md = cost_model_markdown(summary["cost_model"], summary)
    (out / "cost_model.md").write_text(cm_md)
    rows = []
    for name in ["limit", "tessera", "hand_loop", "runinference", "overlap_average"]:
        secs = thr["seconds"][name]
        rows.append([name, f"{thr['pixels_per_s'][name] / 1e6:.3f}", ", ".join(f"{s:.1f}" for s in secs),
                     str(thr["agreement_with_tessera"].get(name, "-" if name != "tessera" else "1.0"))])
    ratio_rows = [[k, f"{thr[k]:.3f}", ", ".join(f"{x:.3f}" for x in thr["per_repeat"][k])]
                  for k in ("efficiency", "vs_hand_loop", "vs_runinference", "vs_overlap_average")]
    as_users = thr.get("hand_loop_tf_defaults", {})
    if "vs_tessera" in as_users:
        ratio_rows.append(["vs_hand_loop_tf_defaults (own process, TF's default allocator; vs tessera's median)",
                           f"{as_users['vs_tessera']:.3f}", f"{as_users['seconds']:.1f} s"])
    mem_rows = []
    for side, run in sorted(mem["runs"].items(), key=lambda kv: int(kv[0])):
        if "skipped" in run:
            mem_rows.append([f"{side}^2", "skipped", "", "", run["skipped"]])
            continue
        status = "ok" if run["exit_code"] == 0 else ("timeout" if run.get("timed_out") else f"exit {run['exit_code']}")
        mem_rows.append([f"{side}^2", f"{run['peak_rss_mib']:.0f}", f"{run['peak_tree_rss_mib']:.0f}",
                         f"{run['seconds']:.1f}", status])
    scale = summary["scaling"]
    scale_rows = [] if "skipped" in scale else [
        [w, _fmt(scale["pixels_per_s"].get(w), "px/s"),
         ", ".join(f"{r['seconds']:.1f}" for r in scale["runs"][w]),
         ", ".join(f"{r['peak_tree_rss_mib']:.0f}" for r in scale["runs"][w])] for w in ("1", "2")]
    parts = [
        "# tessera benchmark report",
        "",
        f"Machine: **{m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB**, GPU: {m['gpu'] or 'none'}; "
        f"{m['date']}; load average {m['load_average_start']} at start, {m['load_average_end']} at end "
        "(a shared machine: only ratios measured in the same repeat are compared). Python "
        f"{m['python']}, TensorFlow {m['tensorflow']}, Beam {m['apache_beam']}, GDAL {m['gdal']}; "
        f"GDAL block cache under tessera's reader: {m['gdal_cachemax_bytes']} bytes.",
        "",
        f"Model `{summary['model']['name']}` {summary['model']['version']} ({summary['model']['architecture']}): "
        f"receptive field {summary['model']['receptive_field']}, alignment {summary['model']['alignment']}, "
        f"halo {summary['model']['halo']}. Tile size **{summary['tile_size']}** for every variant "
        f"(halo overhead (T+2h)^2/T^2 = {thr['halo_overhead']:.3f}), batch size **{summary['batch_size']}** "
        "for every variant. " + ("`--quick` run." if summary["quick"] else "Full run."),
        "",
        "## Headline",
        "",
        _table(ratio_rows, ["ratio (tessera / other, same repeat)", "median", "per repeat"]),
        "",
        f"Peak RSS of `tessera infer` per scene side (MiB): {summary['rss_mib']}; "
        f"rss_ratio (largest / smallest) = **{summary['rss_ratio']}**.",
        "",
        "## Throughput",
        "",
        f"Scene: {thr['scene_side']}^2 x 4 bands uint16, GeoTIFF tiled 512, deflate (`{thr['scene']}`). "
        "Output pixels per second, median of the repeats; seconds per repeat (tessera between the limit and the hand loop, order reversed each repeat); "
        "agreement = fraction of pixels whose class equals tessera's.",
        "",
        _table(rows, ["variant", "Mpx/s", "seconds per repeat", "agreement"]),
        "",
        "- **limit**: the bundle's forward pass alone over the scene's pixels cut into T x T tiles "
        "already in memory as float32 (no I/O, no halo, no model load).",
        "- **tessera**: `run_infer` (DirectRunner, model in-process) end to end: plan, read, mirror, "
        "RunInference, crop, stage, finalise two COGs + quicklook + STAC Item + catalog. "
        "Includes pipeline construction and model load.",
        "- **hand_loop**: rasterio window loop, same tiles/halo/batch, writes a tiled deflate GeoTIFF of classes.",
        "- **runinference**: Beam `RunInference` + `TFModelHandlerNumpy` (load_model overridden: Keras 3 "
        "cannot load SavedModels), same tiles, results collected and written as one GeoTIFF.",
        "- **overlap_average**: Raster Vision-style chips of T at stride T/2, probabilities averaged.",
        "",
        f"Pipeline fixed cost (startup): `run_infer` on a one-tile {summary['tile_size']}^2 scene takes "
        f"{fixed['one_tile_scene_seconds']:.1f} s, i.e. **{fixed['fixed_seconds']:.1f} s** beyond one tile's "
        f"forward pass: {fixed['share_of_tessera_run'] * 100:.0f} % of the tessera run above.",
        "",
        *(["Note: " + n for n in thr.get("hub_note", [])]),
        "",
        "![throughput](throughput.png)",
        "",
        "## Memory",
        "",
        f"`tessera infer` as a subprocess (in-process DirectRunner), model `{mem['model_name']}`, tile "
        f"{mem['tile_size']}, batch {mem['batch_size']}, scenes 4 x uint16 tiled/deflate. Peak RSS is "
        "`ru_maxrss` from `wait4` on that child; the tree column sums `/proc` samples every 0.2 s.",
        "",
        _table(mem_rows, ["scene", "peak RSS MiB", "tree RSS MiB", "wall s", "status"]),
        "",
        *(["![memory](memory.png)", "", "![memory timeline](memory_timeline.png)", ""] if "memory.png" in plots else []),
        "## Scaling",
        "",
        "DirectRunner `--direct_running_mode=multi_processing`, `tessera infer` subprocess on the throughput scene "
        "(includes interpreter start-up and imports):",
        "",
        (_table(scale_rows, ["workers", "px/s (median)", "wall s", "tree RSS MiB"]) if scale_rows
         else f"Skipped: {scale['skipped']}."),
        "",
        f"Speed-up 2 vs 1 workers: {scale.get('speedup_2_vs_1', 'n/a')}.",
        "",
        "### KServe on loopback vs in-process",
        "",
        _optional_md(summary["kserve"]),
        "",
        "### Trigger admission",
        "",
        _optional_md(summary["trigger"]),
        "",
        cm_md,
        "## Harness time",
        "",
        ", ".join(f"{k} {v:.0f} s" for k, v in summary["timings_seconds"].items()),
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(parts))
    return path


def _optional_md(result: dict[str, Any]) -> str:
    import json

    if "skipped" in result:
        return f"Skipped: {result['skipped']}."
    if "error" in result:
        return f"Failed: `{result['error']}`."
    return "```json\n" + json.dumps(result, indent=2, sort_keys=True, default=str)[:4000] + "\n```"
