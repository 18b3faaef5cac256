"""A screenshot of the map page in headless Chromium, for the demo and the e2e test.

Runs ``map_page.js`` with node; playwright-core comes from the repository's
``node_modules`` and the browser is Debian's ``chromium`` (``make web-deps`` installs
both). Returns the driver's report: tile responses, pixels drawn, legend, errors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from transforms.core.errors import TesseraError

DRIVER = Path(__file__).with_name("map_page.js")
NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"


class BrowserUnavailableError(TesseraError, RuntimeError):
    """node, playwright-core or chromium is missing; the message says what to install."""


def browser_problem(node_modules: Path | str = NODE_MODULES) -> str | None:
    """Why a headless screenshot cannot run here, or None if it can."""
    if shutil.which("node") is None:
        return "node is not on PATH (install Node.js 20, then `make web-deps`)"
    if not (Path(node_modules) / "playwright-core").exists():
        return f"playwright-core is not installed under {node_modules} (run `make web-deps`)"
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        return f"chromium not found at {chromium} (run `make web-deps`, or set CHROMIUM)"
    return None


def screenshot(url: str, out_png: str | os.PathLike[str], *, timeout_s: float = 60.0,
               node_modules: Path | str = NODE_MODULES) -> dict[str, Any]:
    """Open the map page at ``url``, wait for drawn tiles, save ``out_png``; return the report."""
    problem = browser_problem(node_modules)
    if problem:
        raise BrowserUnavailableError(problem)
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    cmd = ["node", str(DRIVER), url, str(out_png), str(node_modules), str(int(timeout_s * 1000))]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 30, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BrowserUnavailableError(f"the headless browser did not finish within {timeout_s + 30:.0f} s") from exc
    if done.returncode != 0:
        raise TesseraError(f"map page driver failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))
