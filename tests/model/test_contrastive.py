"""The contrastive head: unit embeddings, and an InfoNCE loss in which captions of one image are not negatives."""

import dataclasses

import numpy as np
import tensorflow as tf

from captioning.model.captioner import Captioner
from captioning.training.loop import contrastive_loss_sum
from tests.helpers import TINY_MODEL

CONFIG = dataclasses.replace(TINY_MODEL, vocab_size=20)


def test_image_and_text_embeddings_have_unit_length():
    model = Captioner(CONFIG)
    images = np.random.default_rng(0).uniform(0, 255, (3, CONFIG.image_size, CONFIG.image_size, 3)).astype("float32")
    targets = tf.constant([[5, 6, 3, 0], [7, 3, 0, 0], [5, 6, 8, 3]])  # words, [end] (id 3), padding
    for embeddings in (model.embed_images(model.encode_images(images)), model.embed_texts(targets)):
        assert embeddings.shape == (3, CONFIG.contrastive_dim)
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)


def test_padding_does_not_change_a_text_embedding():
    model = Captioner(CONFIG)
    short, padded = tf.constant([[5, 6, 3]]), tf.constant([[5, 6, 3, 0, 0, 0]])
    np.testing.assert_allclose(model.embed_texts(short), model.embed_texts(padded), rtol=1e-5, atol=1e-6)


def reference_loss(images, texts, keys, scale):
    """Symmetric InfoNCE in numpy, every other pair a negative except pairs of the same image."""
    logits = scale * images @ texts.T
    same = (keys[:, None] == keys[None, :]) & ~np.eye(len(keys), dtype=bool)
    logits = np.where(same, -np.inf, logits)

    def cross_entropy(rows):
        return -np.diag(rows) + np.log(np.exp(rows).sum(axis=1))

    return (cross_entropy(logits) + cross_entropy(logits.T)).sum() / 2


def test_captions_of_the_same_image_are_not_each_others_negatives():
    rng = np.random.default_rng(1)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    images, texts = unit(rng.normal(size=(5, 8))), unit(rng.normal(size=(5, 8)))
    keys = np.array([10, 11, 10, 12, 13])  # pairs 0 and 2: two captions of one image
    images[2] = images[0]
    loss = contrastive_loss_sum(
        tf.constant(images, tf.float32), tf.constant(texts, tf.float32), tf.constant(keys), tf.constant(10.0)
    )
    np.testing.assert_allclose(float(loss), reference_loss(images, texts, keys, 10.0), rtol=1e-5)
    all_negatives = reference_loss(images, texts, np.arange(5), 10.0)
    assert abs(float(loss) - all_negatives) > 1e-3  # the exclusion changes the loss
