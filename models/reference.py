"""The reference network: a small fully convolutional encoder-decoder with seeded
weights, its normalisation inside. It fixes the bundle contract before a trained
model exists and serves as a fast model for tests of any alignment."""

from __future__ import annotations

from typing import Any

DEFAULT_BANDS = ["B", "G", "R", "NIR"]
DEFAULT_CLASSES = [
    {"id": 0, "name": "background", "colour": "#d9d0c1"},
    {"id": 1, "name": "building", "colour": "#d7301f"},
    {"id": 2, "name": "road", "colour": "#525252"},
    {"id": 3, "name": "vegetation", "colour": "#31a354"},
    {"id": 4, "name": "water", "colour": "#2b8cbe"},
]


def build_reference(
    bands: int = 4,
    classes: int = 5,
    *,
    levels: int = 1,
    width: int = 8,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    seed: int = 0,
) -> Any:
    """A U-shaped FCN with ``levels`` 2x poolings (alignment ``2**levels``)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    mean = mean or [1000.0] * bands
    std = std or [500.0] * bands
    inputs = keras.Input((None, None, bands), name="image")
    x = layers.Normalization(mean=mean, variance=[s * s for s in std], name="normalise")(inputs)
    skips = []
    for level in range(levels):
        x = layers.Conv2D(width * 2**level, 3, padding="same", activation="relu")(x)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(width * 2**levels, 3, padding="same", activation="relu")(x)
    for skip in reversed(skips):
        x = layers.UpSampling2D(2)(x)
        x = layers.Concatenate()([x, skip])
        x = layers.Conv2D(skip.shape[-1], 3, padding="same", activation="relu")(x)
    outputs = layers.Conv2D(classes, 1, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"reference_l{levels}")


def reference_metadata(model: Any, *, levels: int = 1, tile_size: int = 256) -> dict[str, Any]:
    """Metadata for :func:`build_reference`, with the receptive field measured."""
    import numpy as np

    from models.receptive_field import measure_receptive_field

    alignment = 2**levels
    norm = model.get_layer("normalise")
    bands = int(model.input.shape[-1])
    rf = measure_receptive_field(lambda x: np.asarray(model(x, training=False)), bands, alignment)
    return {
        "name": "tessera-reference",
        "architecture": f"reference-fcn-l{levels}",
        "bands": DEFAULT_BANDS[:bands] if bands <= 4 else [f"b{i + 1}" for i in range(bands)],
        "classes": DEFAULT_CLASSES[: int(model.output.shape[-1])],
        "receptive_field": rf,
        "alignment": alignment,
        "tile_size": tile_size,
        "normalisation": {
            "mean": [float(v) for v in np.ravel(norm.mean)],
            "std": [float(v) for v in np.sqrt(np.ravel(norm.variance))],
            "source": "fixed (untrained reference network)",
        },
        "trained_on": {"note": "untrained: seeded random weights"},
    }


def export_reference(output: str, *, levels: int = 2, seed: int = 0, tile_size: int = 256) -> Any:
    """Build, measure and export the reference network as a bundle."""
    from models.export import export_bundle

    model = build_reference(levels=levels, seed=seed)
    return export_bundle(model, reference_metadata(model, levels=levels, tile_size=tile_size), output)
