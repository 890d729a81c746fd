"""A tiny stand-in for the captioning SavedModel, for tests and the benchmark.

It exports the registry's signatures named in FAKED (captioning.export.signatures), with the
registry's inputs, outputs and dtypes, but computes toy numbers: scores from the image's mean
pixel value and the text's word count, and a stand-in for the contrastive head
(`embed_image`, `embed_text`, `contrastive`) that places an image by how close
its mean colour is to each synthetic-scene colour and a text by the colour
words it names, so "red" finds red images.  Like the real model it decodes the
image inside the graph, so a corrupt image or an empty text raises
InvalidArgumentError at serving time.
"""

import os

import tensorflow as tf

from captioning.data.synthetic import COLORS
from captioning.export.layout import temporary_name
from captioning.export.signatures import for_model
from captioning.model.scoring import derived_scores

_STRINGS = tf.TensorSpec([None], tf.string)
_COLOR_NAMES = tf.constant(list(COLORS))
_PALETTE = tf.constant(list(COLORS.values()), tf.float32) / 255.0  # [C, 3]
# The registry's signatures this double has (tests/export/test_signatures.py holds each to the registry).
FAKED = (
    "serving_default",
    "score_matrix",
    "encode_image",
    "score_features",
    "generate_caption",
    "embed_image",
    "embed_text",
)
# Every embedding gets this constant component, so a text naming no colour still has unit length.
_BASE = 0.1


def _mean_colours(image_bytes):
    """Mean RGB in [0, 1] of each encoded image, [N, 3]."""

    def one(encoded):
        pixels = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return tf.reduce_mean(tf.cast(tf.reshape(pixels, [-1, 3]), tf.float32), axis=0) / 255.0

    return tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([3], tf.float32))


def _unit(vectors):
    with_base = tf.concat([vectors, tf.fill([tf.shape(vectors)[0], 1], _BASE)], axis=1)
    return tf.math.l2_normalize(with_base, axis=1)


def _colour_embedding(mean_colours):
    """[N, 3] -> [N, C + 1]: closeness of the mean colour to each palette colour."""
    distance = tf.reduce_sum(tf.square(mean_colours[:, None, :] - _PALETTE[None]), axis=2)
    return _unit(tf.exp(-distance / 0.05))


def _text_embedding(text):
    """[M] -> [M, C + 1]: how often the text names each palette colour."""
    words = tf.strings.split(tf.strings.lower(text))
    counts = [tf.reduce_sum(tf.cast(tf.equal(words, _COLOR_NAMES[i]), tf.float32), axis=1) for i in range(len(COLORS))]
    return _unit(tf.stack(counts, axis=1))


def _image_brightness(image_bytes):
    """Mean pixel value in [0, 1] of each encoded image."""
    return tf.reduce_mean(_mean_colours(image_bytes), axis=1)


def _word_counts(text):
    counts = tf.cast(tf.strings.split(text).row_lengths(), tf.int32)
    tf.debugging.assert_positive(counts, message="text must contain at least one word")
    return counts


class FakeCaptioner(tf.Module):
    def __init__(self, version, contrastive=True):
        super().__init__()
        self.contrastive = contrastive
        # A variable, so the export has a variables/ directory like the real one;
        # it also makes every version's scores differ.
        self.version_bias = tf.Variable(0.01 * version, dtype=tf.float32)

    def _log_likelihood(self, brightness, num_tokens):
        return -tf.cast(num_tokens, tf.float32) * (1.0 + brightness) - self.version_bias

    def _pair_scores(self, mean_colours, text):
        brightness = tf.reduce_mean(mean_colours, axis=1)
        num_tokens = _word_counts(text)
        prior = -1.5 * tf.cast(num_tokens, tf.float32)
        scores = derived_scores(
            self._log_likelihood(brightness, num_tokens), prior, num_tokens, tf.zeros_like(num_tokens), num_tokens > 16
        )
        if self.contrastive:
            scores["contrastive"] = tf.reduce_sum(_colour_embedding(mean_colours) * _text_embedding(text), axis=1)
        return scores

    @tf.function(input_signature=[_STRINGS, _STRINGS])
    def serving_default(self, image_bytes, text):
        return self._pair_scores(_mean_colours(image_bytes), text)

    @tf.function(input_signature=[_STRINGS, _STRINGS])
    def score_matrix(self, image_bytes, text):
        mean_colours = _mean_colours(image_bytes)
        brightness = tf.reduce_mean(mean_colours, axis=1)[:, tf.newaxis]
        num_tokens = _word_counts(text)[tf.newaxis, :]
        log_likelihood = self._log_likelihood(brightness, num_tokens)
        tokens = tf.cast(num_tokens, tf.float32)
        scores = {
            "log_likelihood": log_likelihood,
            "mean_log_prob": log_likelihood / tokens,
            "pmi": log_likelihood + 1.5 * tokens,
        }
        if self.contrastive:
            scores["contrastive"] = tf.matmul(_colour_embedding(mean_colours), _text_embedding(text), transpose_b=True)
        return scores

    @tf.function(input_signature=[_STRINGS])
    def embed_image(self, image_bytes):
        return {"embedding": _colour_embedding(_mean_colours(image_bytes))}

    @tf.function(input_signature=[_STRINGS])
    def embed_text(self, text):
        _word_counts(text)  # a text without words is an error, as for scoring
        return {"embedding": _text_embedding(text)}

    @tf.function(input_signature=[_STRINGS])
    def encode_image(self, image_bytes):
        # One grid cell holding the mean colour: all the fake scores need.
        return {"image_features": _mean_colours(image_bytes)[:, tf.newaxis, :]}

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32), _STRINGS])
    def score_features(self, image_features, text):
        return self._pair_scores(tf.reduce_mean(image_features, axis=1), text)

    @tf.function(
        input_signature=[
            _STRINGS,
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([], tf.float32),
        ]
    )
    def generate_caption(self, image_bytes, beam_size, max_length, length_penalty):
        """ "a <colour> picture" for the `beam_size` palette colours nearest the image's mean colour."""
        del max_length, length_penalty  # the fake captions have one length
        mean_colours = _mean_colours(image_bytes)
        beam_size = tf.minimum(beam_size, len(COLORS))
        _, nearest = tf.math.top_k(_colour_embedding(mean_colours)[:, :-1], k=beam_size)
        captions = tf.strings.join(["a", tf.gather(_COLOR_NAMES, nearest), "picture"], separator=" ")
        num_tokens = tf.fill(tf.shape(nearest), 4)  # three words and [end]
        brightness = tf.reduce_mean(mean_colours, axis=1)[:, tf.newaxis]
        return {
            "caption": captions,
            "num_tokens": num_tokens,
            "log_likelihood": self._log_likelihood(brightness, num_tokens) + tf.zeros(tf.shape(nearest)),
            "tokens": tf.zeros(tf.concat([tf.shape(nearest), [4]], axis=0), tf.int32),
        }


def export_fake_model(base_path, version, contrastive=True):
    """Writes version `version` of the fake model under `base_path` (without `contrastive`: no embed_image,
    embed_text or contrastive output, as a model trained with --contrastive_weight 0).

    The version is written to a temporary directory and renamed into place, so
    a polling server never sees a half-written version.
    """
    module = FakeCaptioner(version, contrastive)
    signatures = {
        signature.name: getattr(module, signature.name)
        for signature in for_model(head=contrastive)
        if signature.name in FAKED
    }
    final_path = os.path.join(base_path, str(version))
    staging_path = os.path.join(base_path, temporary_name(version, os.getpid()))
    tf.saved_model.save(module, staging_path, signatures=signatures)
    os.rename(staging_path, final_path)
    return final_path
