"""Peak memory of ``tessera infer`` as a user runs it: a subprocess per scene size.

The peak is the kernel's high-water mark of the ``tessera`` process (``VmHWM`` in
``/proc/PID/status``, polled every 0.2 s, so only the last 0.2 s before exit can be
missed). ``ru_maxrss`` from ``os.wait4(pid)`` is kept too, but it is the largest of the
process *and any child it forked*, and a fork of a 1 GiB process reports 1 GiB of shared
pages, so it overstates; ``RUSAGE_CHILDREN`` is worse still (the maximum over every
child ever waited for). The sampler also sums ``VmRSS`` over the process tree, so
workers started by ``--direct_running_mode=multi_processing`` are counted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _rss_kb(pid: int) -> int:
    return _status_kb(pid, "VmRSS:")


def _children(pid: int) -> list[int]:
    """Children of every thread (workers may be forked from any thread)."""
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(p) for p in f.read().split())
        except OSError:
            continue
    return kids


def tree_rss_kb(pid: int) -> int:
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += _rss_kb(p)
        stack.extend(_children(p))
    return total


class _Sampler(threading.Thread):
    def __init__(self, pid: int, period_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.period_s = pid, period_s
        self.peak_kb = 0
        self.hwm_kb = 0  # the kernel's high-water mark of the main process (VmHWM)
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()
        self._t0 = time.perf_counter()

    def run(self) -> None:
        while not self._stop_event.is_set():
            kb = tree_rss_kb(self.pid)
            self.hwm_kb = max(self.hwm_kb, _status_kb(self.pid, "VmHWM:"))
            self.peak_kb = max(self.peak_kb, kb)
            self.samples.append((round(time.perf_counter() - self._t0, 2), kb))
            self._stop_event.wait(self.period_s)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def tessera_command() -> list[str]:
    """``tessera`` from the venv next to this interpreter, else ``python -m tessera``."""
    exe = Path(sys.executable).with_name("tessera")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "tessera"]


def run_infer_subprocess(
    scene: str,
    output: str,
    *,
    model: str | None,
    tile_size: int,
    batch_size: int,
    extra: list[str] | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Run ``tessera infer`` once; wall seconds, peak RSS (MiB), exit code, last output."""
    shutil.rmtree(output, ignore_errors=True)
    cmd = [*tessera_command(), "infer", "--scenes", scene, "--output", output,
           "--tile-size", str(tile_size), "--batch-size", str(batch_size), "--no-progress"]
    if model:
        cmd += ["--model", model]
    cmd += extra or []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    log_path = Path(output + ".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler = _Sampler(proc.pid)
        sampler.start()
        timer = None
        timed_out = threading.Event()
        if timeout_s:
            def _kill() -> None:
                timed_out.set()
                proc.kill()

            timer = threading.Timer(timeout_s, _kill)
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer is not None:
                timer.cancel()
            sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    tail = log_path.read_text(errors="replace")[-1500:]
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(sampler.hwm_kb / 1024, 1),
        "peak_tree_rss_mib": round(sampler.peak_kb / 1024, 1),
        "ru_maxrss_mib": round(usage.ru_maxrss / 1024, 1),
        "exit_code": proc.returncode,
        "timed_out": timed_out.is_set(),
        "log_tail": tail if proc.returncode else tail[-300:],
        "rss_timeline": sampler.samples[:: max(1, len(sampler.samples) // 200)],
    }


def measure_sizes(
    scenes: dict[int, str],
    work: Path,
    *,
    model: str | None,
    tile_size: int,
    batch_size: int,
    budget_s: float | None = None,
) -> dict[str, Any]:
    """Peak RSS and wall time of ``tessera infer`` per scene side (smallest first).

    With ``budget_s``, sizes that would start after the budget is spent are skipped
    (noted), and a run is killed when it alone would overrun it.
    """
    runs: dict[str, Any] = {}
    started = time.perf_counter()
    for side in sorted(scenes):
        left = None if budget_s is None else budget_s - (time.perf_counter() - started)
        if left is not None and left < 30:
            runs[str(side)] = {"skipped": f"memory budget of {budget_s:.0f} s spent"}
            continue
        result = run_infer_subprocess(
            scenes[side], str(work / f"mem-{side}"), model=model, tile_size=tile_size,
            batch_size=batch_size, timeout_s=left,
        )
        result["pixels"] = side * side
        if result["exit_code"] == 0:
            result["pixels_per_s"] = round(side * side / result["seconds"], 1)
        runs[str(side)] = result
        shutil.rmtree(work / f"mem-{side}", ignore_errors=True)
    ok = {int(k): v for k, v in runs.items() if v.get("exit_code") == 0}
    summary: dict[str, Any] = {"runs": runs}
    if len(ok) >= 2:
        small, large = ok[min(ok)], ok[max(ok)]
        summary["rss_ratio"] = round(large["peak_rss_mib"] / small["peak_rss_mib"], 3)
        summary["rss_ratio_sizes"] = [min(ok), max(ok)]
    return summary
