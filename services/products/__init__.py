"""The products service: STAC catalogue, XYZ map tiles and the map page."""

from __future__ import annotations

from typing import Any


def screenshot(url: str, out_png: str, **kwargs: Any) -> dict[str, Any]:
    """Save a headless-Chromium screenshot of the map page at ``url`` (see screenshot.py)."""
    from services.products.screenshot import screenshot as _screenshot

    return _screenshot(url, out_png, **kwargs)


__all__ = ["screenshot"]
