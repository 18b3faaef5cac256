"""``tessera serve trigger | model | products``: one entry per deployed service."""

from __future__ import annotations

import importlib
import sys

SERVICES = {
    "trigger": "services.trigger.app",
    "model": "models.predictor",
    "products": "services.products.app",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SERVICES:
        print(f"usage: tessera serve {{{'|'.join(SERVICES)}}} [OPTIONS]", file=sys.stderr)
        return 2
    module = importlib.import_module(SERVICES[argv[0]])
    return int(module.main(argv[1:]) or 0)
