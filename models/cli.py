"""``tessera model info [DIR]``: the bundle metadata as JSON, with its path."""

from __future__ import annotations

import argparse
import json

from models.bundle import read_metadata, resolve_model_path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tessera model")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print bundle metadata as JSON")
    info.add_argument("path", nargs="?", help="bundle directory or URL (default: shipped model)")
    args = parser.parse_args(argv)
    path = resolve_model_path(args.path)
    meta = read_metadata(path)
    doc = {"path": path, **meta.model_dump(mode="json"), "halo": meta.halo}
    print(json.dumps(doc, indent=2, sort_keys=True))
    return 0
