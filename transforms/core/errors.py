"""One root exception; each subclass also inherits the builtin it refines.

Callers can catch ``TesseraError`` for anything of ours, or the builtin they would
have caught anyway (``ValueError``, ``OSError``, ``FileNotFoundError``).
"""

from __future__ import annotations


class TesseraError(Exception):
    """Root of every error tessera raises on purpose."""


class ConfigError(TesseraError, ValueError):
    """A setting, option or profile is invalid; the message names it and the fix."""


class BundleError(TesseraError, ValueError):
    """A model bundle is missing, malformed or breaks the bundle contract."""


class SceneError(TesseraError):
    """Something is wrong with one input scene; ``url`` names it."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"{url}: {problem}")
        self.url = url
        self.problem = problem


class SceneNotFoundError(SceneError, FileNotFoundError):
    """The scene URL does not exist."""


class InvalidSceneError(SceneError, ValueError):
    """The scene opens but cannot be used (no CRS, wrong bands, too large, not a raster)."""


class SceneReadError(SceneError, OSError):
    """The scene's header was fine but its pixels could not be read (e.g. truncated)."""


class InferenceError(TesseraError, RuntimeError):
    """The model could not produce an output for some tiles."""


class RemoteModelError(InferenceError, ConnectionError):
    """A remote model server failed permanently; the message names its URL."""
