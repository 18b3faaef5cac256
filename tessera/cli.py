"""The ``tessera`` command. Each subcommand lives beside the code it runs and is
imported only when called, so ``tessera model info`` never waits for Beam."""

from __future__ import annotations

import importlib
import logging
import os
import sys

# name -> (module, function, one-line help). The function takes argv and returns an exit code.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("tessera.demo", "main", "the main job on the embedded default (local files)"),
    "infer": ("beam_pipelines.infer", "main", "scenes in, seamless COGs + STAC Items out"),
    "mosaic": ("beam_pipelines.mosaic", "main", "assemble per-scene outputs into mosaic tiles"),
    "model": ("models.cli", "main", "model bundle commands: `model info [DIR]`"),
    "synth": ("models.synth", "main", "synthetic SPOT 6/7-like scenes with labels"),
    "prepare": ("beam_pipelines.prepare", "main", "training patches + tf.Transform statistics"),
    "train": ("models.train", "main", "train a U-Net and export a bundle"),
    "train-default": ("models.train", "train_default", "retrain the shipped default model"),
    "evaluate": ("models.evaluate", "main", "IoU / mIoU through the tiled inference path"),
    "watch": ("services.trigger.watch", "main", "local trigger polling any fsspec URL"),
    "serve": ("tessera.serve", "main", "serve trigger | model | products"),
    "bench": ("benchmarks.harness", "main", "the benchmark report"),
}


def _usage() -> str:
    lines = ["usage: tessera COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<14} {desc}" for name, (_, _, desc) in COMMANDS.items()]
    lines += ["", "`tessera COMMAND --help` for the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=os.environ.get("TESSERA_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from tessera import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"tessera: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[name]
    try:
        entry = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        print(f"tessera {name}: not available in this installation ({exc})", file=sys.stderr)
        return 2
    from transforms.core.errors import TesseraError

    try:
        return int(entry(rest) or 0)
    except TesseraError as exc:
        print(f"tessera {name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tessera {name}: interrupted", file=sys.stderr)
        return 130
