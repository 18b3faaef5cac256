"""The tf.Transform preprocessing: per-band mean and std of raw values, nodata ignored.

Records hold one patch each, flattened row-major from ``(P, P, C)``: ``image`` float32
raw digital numbers (0 = nodata in every band) and ``labels`` int64 (255 = nodata).
The transform outputs the normalised image, the labels unchanged, and the statistics
themselves (``band_mean``, ``band_std``) so that training reads them back from the
saved transform graph and puts them into the network's Normalization layer: the model
that serves normalises exactly as the data it was trained on.
"""

from __future__ import annotations

from typing import Any

BANDS = 4
NODATA_VALUE = 0.0
IMAGE, LABELS, MEAN, STD = "image", "labels", "band_mean", "band_std"


def raw_feature_spec(patch_size: int, bands: int = BANDS) -> dict[str, Any]:
    import tensorflow as tf

    return {
        IMAGE: tf.io.FixedLenFeature([patch_size * patch_size * bands], tf.float32),
        LABELS: tf.io.FixedLenFeature([patch_size * patch_size], tf.int64),
    }


def transformed_feature_spec(patch_size: int, bands: int = BANDS) -> dict[str, Any]:
    import tensorflow as tf

    spec = raw_feature_spec(patch_size, bands)
    spec[MEAN] = tf.io.FixedLenFeature([bands], tf.float32)
    spec[STD] = tf.io.FixedLenFeature([bands], tf.float32)
    return spec


def make_preprocessing_fn(bands: int = BANDS) -> Any:
    """The ``preprocessing_fn`` for ``tft_beam.AnalyzeAndTransformDataset``."""

    def preprocessing_fn(inputs: dict[str, Any]) -> dict[str, Any]:
        import tensorflow as tf
        import tensorflow_transform as tft

        image = inputs[IMAGE]
        pixels = tf.reshape(image, [-1, bands])
        valid = tf.reduce_any(tf.not_equal(pixels, NODATA_VALUE), axis=1)
        valid_pixels = tf.boolean_mask(pixels, valid)
        mean = tft.mean(valid_pixels, reduce_instance_dims=False, name="band_mean")
        var = tft.var(valid_pixels, reduce_instance_dims=False, name="band_var")
        std = tf.sqrt(var)
        batch = tf.shape(image)[0]
        normalised = (tf.reshape(image, [batch, -1, bands]) - mean) / std
        ones = tf.ones([batch, 1], tf.float32)
        return {
            IMAGE: tf.reshape(normalised, [-1, image.shape[1]]),
            LABELS: inputs[LABELS],
            MEAN: ones * mean[None, :],
            STD: ones * std[None, :],
        }

    return preprocessing_fn
