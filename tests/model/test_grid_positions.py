"""The encoder's cell positions start as the grid's geometry: "left of" is one direction from the first step."""

import dataclasses

import numpy as np
import pytest

from captioning.model.captioner import Captioner
from captioning.model.grid_positions import grid_positions
from tests.helpers import TINY_MODEL


@pytest.mark.parametrize("rows, cols, dim", [(8, 8, 128), (7, 7, 32), (4, 6, 31)])
def test_positions_have_the_scale_of_a_standard_normal_and_every_cell_its_own(rows, cols, dim):
    positions = grid_positions(rows, cols, dim)
    assert positions.shape == (rows * cols, dim)
    assert np.mean(positions**2) == pytest.approx(1.0 if dim % 2 == 0 else (dim - 1) / dim)
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    assert distances[~np.eye(rows * cols, dtype=bool)].min() > 1.0


def test_one_direction_reads_the_column_and_another_the_row():
    rows, cols, dim = 8, 8, 128
    positions = grid_positions(rows, cols, dim).reshape(rows, cols, dim)
    column_reading, row_reading = positions[..., 0], positions[..., dim // 2]
    assert np.all(np.diff(column_reading, axis=1) > 0) and np.allclose(np.diff(column_reading, axis=0), 0)
    assert np.all(np.diff(row_reading, axis=0) > 0) and np.allclose(np.diff(row_reading, axis=1), 0)


def test_neighbouring_cells_start_more_alike_than_distant_ones():
    positions = grid_positions(8, 8, 128).reshape(8, 8, -1)
    for col in range(8):  # along a row
        similarity = {other: float(positions[3, col] @ positions[3, other]) for other in range(8)}
        neighbours = [similarity[other] for other in (col - 1, col + 1) if 0 <= other < 8]
        distant = [similarity[other] for other in range(8) if abs(other - col) >= 2]
        assert min(neighbours) > max(distant)


def test_the_encoder_starts_from_them_for_its_grid():
    model = Captioner(dataclasses.replace(TINY_MODEL, vocab_size=20))
    model.encode_images(np.zeros((1, TINY_MODEL.image_size, TINY_MODEL.image_size, 3), np.float32))
    rows, cols = model.encoder.grid_shape
    expected = grid_positions(rows, cols, TINY_MODEL.embed_dim)
    np.testing.assert_allclose(np.asarray(model.encoder.position), expected, rtol=1e-6, atol=1e-6)
