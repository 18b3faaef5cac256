"""A small U-Net: the default tessera segmentation network.

Two models share the same layers: ``core`` maps normalised pixels to class
probabilities (what training sees, fed by the tf.Transform output) and ``serving``
puts a Normalization layer holding the tf.Transform statistics in front of it (what the
bundle exports: raw values in). ``alignment`` is ``2**levels``, the product of the
poolings, derived from the architecture rather than typed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class UNetConfig:
    bands: int = 4
    classes: int = 5
    levels: int = 3
    width: int = 16
    max_width: int = 64

    @property
    def alignment(self) -> int:
        return 2**self.levels

    @property
    def name(self) -> str:
        return f"unet-l{self.levels}-w{self.width}"


def _block(x: Any, filters: int, name: str) -> Any:
    from keras import layers

    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def build_core(cfg: UNetConfig, seed: int = 0) -> Any:
    """Normalised ``[N, H, W, bands]`` -> softmax ``[N, H, W, classes]``; H, W multiples of alignment."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, cfg.bands), name="normalised")
    x = inputs
    skips = []
    for level in range(cfg.levels):
        x = _block(x, min(cfg.width * 2**level, cfg.max_width), f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = _block(x, min(cfg.width * 2**cfg.levels, cfg.max_width), "bottom")
    for level in reversed(range(cfg.levels)):
        x = layers.UpSampling2D(2, name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _block(x, min(cfg.width * 2**level, cfg.max_width), f"dec{level}")
    outputs = layers.Conv2D(cfg.classes, 1, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"{cfg.name}-core")


def build_serving(core: Any, mean: list[float], std: list[float]) -> Any:
    """Raw values in: the tf.Transform statistics in a Normalization layer, then ``core``."""
    import keras
    from keras import layers

    bands = int(core.input.shape[-1])
    inputs = keras.Input((None, None, bands), name="image")
    x = layers.Normalization(mean=mean, variance=[s * s for s in std], name="normalise")(inputs)
    return keras.Model(inputs, core(x), name=core.name.removesuffix("-core"))
