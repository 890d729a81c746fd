"""A tiny stand-in for the captioning SavedModel, for tests and the benchmark.

It exposes the same signature names, inputs, outputs and dtypes as the real
export (see DESIGN.md) but computes toy numbers from the image's mean pixel
value and the text's word count.  Like the real model it decodes the image
inside the graph, so a corrupt image or an empty text raises
InvalidArgumentError at serving time.
"""
import os

import tensorflow as tf

from captioning.scoring import derived_scores

_STRINGS = tf.TensorSpec([None], tf.string)


def _image_brightness(image_bytes):
    """Mean pixel value in [0, 1] of each encoded image."""

    def one(encoded):
        pixels = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return tf.reduce_mean(tf.cast(pixels, tf.float32)) / 255.0

    return tf.map_fn(one, image_bytes, fn_output_signature=tf.float32)


def _word_counts(text):
    counts = tf.cast(tf.strings.split(text).row_lengths(), tf.int32)
    tf.debugging.assert_positive(counts, message="text must contain at least one word")
    return counts


class FakeCaptioner(tf.Module):
    def __init__(self, version):
        super().__init__()
        # A variable, so the export has a variables/ directory like the real one;
        # it also makes every version's scores differ.
        self.version_bias = tf.Variable(0.01 * version, dtype=tf.float32)

    def _log_likelihood(self, brightness, num_tokens):
        return -tf.cast(num_tokens, tf.float32) * (1.0 + brightness) - self.version_bias

    @tf.function(input_signature=[_STRINGS, _STRINGS])
    def serve(self, image_bytes, text):
        brightness = _image_brightness(image_bytes)
        num_tokens = _word_counts(text)
        prior = -1.5 * tf.cast(num_tokens, tf.float32)
        return derived_scores(self._log_likelihood(brightness, num_tokens), prior, num_tokens,
                              tf.zeros_like(num_tokens), num_tokens > 16)

    @tf.function(input_signature=[_STRINGS, _STRINGS])
    def score_matrix(self, image_bytes, text):
        brightness = _image_brightness(image_bytes)[:, tf.newaxis]
        num_tokens = _word_counts(text)[tf.newaxis, :]
        log_likelihood = self._log_likelihood(brightness, num_tokens)
        tokens = tf.cast(num_tokens, tf.float32)
        return {
            "log_likelihood": log_likelihood,
            "mean_log_prob": log_likelihood / tokens,
            "pmi": log_likelihood + 1.5 * tokens,
        }


def export_fake_model(base_path, version):
    """Writes version `version` of the fake model under `base_path`.

    The version is written to a temporary directory and renamed into place, so
    a polling server never sees a half-written version.
    """
    module = FakeCaptioner(version)
    final_path = os.path.join(base_path, str(version))
    staging_path = os.path.join(base_path, f".staging-{version}")
    tf.saved_model.save(
        module,
        staging_path,
        signatures={"serving_default": module.serve, "score_matrix": module.score_matrix},
    )
    os.rename(staging_path, final_path)
    return final_path
