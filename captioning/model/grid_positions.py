"""The starting value of the encoder's learned cell positions: each cell's column and row as sines and cosines.

Drawn at random instead, the 64 positions of an 8 x 8 grid start unrelated and barely move in training (their
leading directions stay at about 4% of the variance each, as random vectors have), so the decoder has to learn each
cell's place on its own: nothing it learns of one cell's column carries over to the next. Relations among three
and four objects, "between" above all, then came late and on some training seeds not at all. Started as sines and
cosines of the column and the row, neighbouring cells start alike, and "left of" is one direction of the vector
from the first step; the vectors still train.
"""

import numpy as np

LOWEST_CYCLES = 0.5  # the slowest wave: half a cycle across the grid, so it rises from one edge to the other
HIGHEST_CYCLES_PER_CELL = 0.25  # the fastest: neighbouring cells a quarter cycle apart


def axis_waves(length: int, dims: int) -> np.ndarray:
    """[length, dims]: each place along an axis of `length` cells as sines and cosines of frequencies spaced
    evenly on a log scale from LOWEST_CYCLES across the axis to HIGHEST_CYCLES_PER_CELL."""
    pairs = -(-dims // 2)
    centres = (np.arange(length) + 0.5) / length - 0.5  # -0.5 to 0.5 across the axis
    cycles = np.geomspace(LOWEST_CYCLES, max(LOWEST_CYCLES, HIGHEST_CYCLES_PER_CELL * length), pairs)
    angles = 2 * np.pi * centres[:, None] * cycles[None, :]
    waves = np.stack([np.sin(angles), np.cos(angles)], axis=-1).reshape(length, 2 * pairs)
    return waves[:, :dims]


def grid_positions(rows: int, cols: int, dim: int) -> np.ndarray:
    """[rows * cols, dim], cells numbered row by row: the first half of each vector the column's waves, the second
    the row's (an odd `dim` leaves the last entry 0). Scaled by sqrt(2) to unit mean square per entry, the scale of
    the standard normal values it replaces, against which the decoder's norms were tuned."""
    half = dim // 2
    column = np.tile(axis_waves(cols, half), (rows, 1))
    row = np.repeat(axis_waves(rows, half), cols, axis=0)
    positions = np.zeros((rows * cols, dim))
    positions[:, :half], positions[:, half : 2 * half] = column, row
    return np.sqrt(2.0) * positions
