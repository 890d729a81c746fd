import dataclasses

import keras
import numpy as np

from captioning.model.captioner import Captioner
from captioning.model.cell_context import CellContext
from captioning.model.config import ModelConfig
from tests.helpers import TINY_MODEL

EMBED_DIM = 16


def _context(seed=0):
    keras.utils.set_random_seed(seed)
    layer = CellContext(EMBED_DIM, num_heads=4)
    layer.build((None, None, EMBED_DIM))
    return layer


def _cells(kinds):
    """One row of cells, each a fixed random vector per kind letter."""
    vectors = {kind: np.random.default_rng(ord(kind)).normal(size=EMBED_DIM) for kind in set(kinds)}
    return np.stack([vectors[kind] for kind in kinds])[None].astype(np.float32)


def test_two_of_a_kind_read_otherwise_than_three():
    """A softmax average over identical cells is the same for two as for three; the context sums, so it differs."""
    context = _context()
    two, three = np.asarray(context(_cells("SS")))[0, 0], np.asarray(context(_cells("SSS")))[0, 0]
    assert np.abs(two - three).max() > 1e-3 * np.abs(two).max()
    averaged = keras.layers.MultiHeadAttention(4, 4)
    assert np.allclose(
        averaged(_cells("SS"), _cells("SS"))[0, 0], averaged(_cells("SSS"), _cells("SSS"))[0, 0], atol=1e-5
    )  # the premise: averaging cannot tell them apart


def test_a_cell_reads_the_same_wherever_the_others_are():
    context = _context()
    order = np.array([3, 0, 4, 1, 2])
    cells = _cells("SCSTC")
    np.testing.assert_allclose(
        np.asarray(context(cells))[0, order], np.asarray(context(cells[:, order]))[0], rtol=1e-5, atol=1e-5
    )


def test_models_saved_before_the_context_load_without_one():
    assert ModelConfig.from_dict({"embed_dim": 32}).context_heads == 0


def test_a_model_with_a_context_saves_and_loads_the_same_scores(tmp_path):
    config = dataclasses.replace(TINY_MODEL, vocab_size=20, context_heads=2)
    images = np.random.default_rng(0).uniform(0, 255, (2, config.image_size, config.image_size, 3)).astype("float32")
    tokens = np.random.default_rng(1).integers(4, 20, (2, config.max_length)).astype("int32")
    model = Captioner(config)
    assert model.encode_images(images).shape[-1] == 3 * config.embed_dim  # content, context, position
    model.save_weights(str(tmp_path / "model.weights.h5"))
    loaded = Captioner(ModelConfig.from_dict(dataclasses.asdict(config)))
    loaded.load_weights(str(tmp_path / "model.weights.h5"))
    np.testing.assert_allclose(model(images, tokens), loaded(images, tokens), rtol=1e-5, atol=1e-5)
