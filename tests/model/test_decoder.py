"""The decoder's summed read-out: where cross-attention averages over the image grid, it sums (so it can count)."""

import numpy as np

from captioning.model.config import ModelConfig
from captioning.model.decoder import SummedImageReadout

EMBED = 8


def _grid(content_of_cells, cells=16, seed=0):
    """[1, cells, 2 * EMBED] features: the given content in the first cells, a background vector in the rest, and a
    distinct random position per cell."""
    rng = np.random.default_rng(seed)
    background = rng.normal(size=EMBED)
    content = np.stack(list(content_of_cells) + [background] * (cells - len(content_of_cells)))
    return np.concatenate([content, rng.normal(size=(cells, EMBED))], axis=-1)[None].astype("float32")


def test_the_summed_read_out_starts_as_no_change_and_then_counts():
    readout = SummedImageReadout(EMBED, 4)
    star = np.random.default_rng(1).normal(size=EMBED) * 3
    grids = [_grid([star] * count)[..., :EMBED] for count in (1, 2, 3)]
    np.testing.assert_array_equal(readout(grids[0]), np.zeros((1, EMBED)))  # zero projection: adds nothing yet
    readout.projection.kernel.assign(np.random.default_rng(2).normal(size=(4, EMBED)))
    one, two, three = (np.asarray(readout(grid)) for grid in grids)
    # A sum: each more star adds the same step, so two stars and three are apart by as much as one and two.
    np.testing.assert_allclose(three - two, two - one, rtol=1e-4, atol=1e-5)
    assert np.abs(three - two).max() > 1e-3


def test_configs_saved_before_the_new_options_rebuild_the_old_model():
    saved = {"vocab_size": 30, "embed_dim": 64, "contrastive_dim": 32}
    config = ModelConfig.from_dict(saved)
    assert config.summed_readout_dim == 0
