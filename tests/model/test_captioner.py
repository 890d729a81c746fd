import dataclasses

import numpy as np
import tensorflow as tf

from captioning.model.captioner import Captioner
from tests.helpers import TINY_MODEL

CONFIG = dataclasses.replace(TINY_MODEL, vocab_size=20)


def _inputs(batch=3):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, CONFIG.image_size, CONFIG.image_size, 3)).astype("float32")
    return images, rng.integers(0, CONFIG.vocab_size, (batch, CONFIG.max_length)).astype("int32")


def test_logits_shape_and_null_image_changes_the_output():
    model = Captioner(CONFIG)
    images, ids = _inputs()
    logits = model(images, ids)
    assert logits.shape == (3, CONFIG.max_length, CONFIG.vocab_size) and logits.dtype == tf.float32
    null = model(images, ids, use_null_image=tf.constant([True, False, True]))
    np.testing.assert_allclose(null[1], logits[1], rtol=1e-5, atol=1e-5)
    assert not np.allclose(null[0], logits[0])
    # With the null image every picture gives the same text distribution: the prior.
    np.testing.assert_allclose(
        null[0], model(images[2:], ids[:1], use_null_image=tf.constant([True]))[0], rtol=1e-4, atol=1e-5
    )


def test_decoder_is_causal():
    model = Captioner(CONFIG)
    images, ids = _inputs(1)
    changed = ids.copy()
    changed[0, 5:] = (changed[0, 5:] + 1) % CONFIG.vocab_size
    np.testing.assert_allclose(model(images, ids)[0, :5], model(images, changed)[0, :5], rtol=1e-5, atol=1e-6)


def test_config_and_weights_round_trip(tmp_path):
    model = Captioner(CONFIG)
    rebuilt = Captioner.from_config(model.get_config())
    assert rebuilt.config == model.config
    path = str(tmp_path / "model.weights.h5")
    model.save_weights(path)
    rebuilt.load_weights(path)
    images, ids = _inputs()
    np.testing.assert_allclose(rebuilt(images, ids), model(images, ids), rtol=1e-6)
