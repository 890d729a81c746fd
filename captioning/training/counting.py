"""The counting loss: trains the encoder's cell context to hold how many of each kind the scene has.

A caption loss alone leaves the context short of counting (count 0.87 on the development seed, where the aim is
0.95): the words after a number are scored by the language prior, and a cell that covers part of a large star
reads like one of a small star. So, where the data says what a scene holds (the synthetic generator's COCO
`scene`, as captioning.data.scene_counts rows), a small head reads each cell's context and names two counts at the
cell of each object's centre: how many of the scene's objects share its shape, and how many share its shape and
colour. Every other cell names 0. The head is a training aid only: it is checkpointed with the run and never exported.
"""

import dataclasses

import keras
import tensorflow as tf

from captioning.data import tfrecords

MAX_COUNT = 4  # classes 0 (no object centred here) to 4; larger counts are named 4
NUM_COUNTS = 2  # of the shape, of the shape and colour
OBJECT_CELL_WEIGHT = 16.0  # an object's cell against an empty one: the few cells that carry the counts matter most


def cell_targets(counts, grid_shape):
    """counts [B, objects, 4] (scene_counts.counts_array rows) -> int32 [B, rows * cols, 2]: each cell's two count
    classes, 0 where no object is centred. Cells are numbered row by row, as the encoder lays out its grid."""
    rows, cols = grid_shape
    row = tf.minimum(tf.cast(counts[..., 1] * rows, tf.int32), rows - 1)
    col = tf.minimum(tf.cast(counts[..., 0] * cols, tf.int32), cols - 1)
    at_cell = tf.one_hot(row * cols + col, rows * cols, dtype=counts.dtype)  # [B, objects, cells]
    classes = tf.minimum(counts[..., 2:], MAX_COUNT)  # [B, objects, 2]; 0 for padding
    # The larger where two objects share a cell (padding adds 0s).
    return tf.cast(tf.reduce_max(at_cell[..., None] * classes[:, :, None, :], axis=1), tf.int32)


def count_head(name="count_head") -> keras.layers.Layer:
    """cell context [B, cells, E] -> logits [B, cells, NUM_COUNTS * (MAX_COUNT + 1)]."""
    return keras.layers.Dense(NUM_COUNTS * (MAX_COUNT + 1), name=name)


def count_loss_sum(logits, counts, grid_shape):
    """The counting loss of each image that has a scene, summed over images: per image, its cells' cross-entropy
    averaged with object cells weighted OBJECT_CELL_WEIGHT. Images without a scene (all counts 0) add nothing."""
    targets = cell_targets(counts, grid_shape)
    logits = tf.cast(logits, tf.float32)
    per_cell = tf.add_n(
        [
            tf.nn.sparse_softmax_cross_entropy_with_logits(
                targets[..., i], logits[..., i * (MAX_COUNT + 1) : (i + 1) * (MAX_COUNT + 1)]
            )
            for i in range(NUM_COUNTS)
        ]
    )
    weights = 1.0 + (OBJECT_CELL_WEIGHT - 1.0) * tf.cast(targets[..., 0] > 0, tf.float32)
    per_image = tf.reduce_sum(per_cell * weights, axis=1) / tf.reduce_sum(weights, axis=1)
    has_scene = tf.cast(tf.reduce_any(counts[..., 2] > 0, axis=1), tf.float32)
    return tf.reduce_sum(per_image * has_scene)


def off_reason(context_heads: int, data) -> str:
    """Why a run of this model on this data can train no counting head ("" when it can)."""
    if not context_heads:
        return "the model has no cell context to train (--context_heads 0)"
    if isinstance(data, tfrecords.ShardedRecords):
        return (
            ""
            if data.most_objects
            else (
                "these TFRecords say nothing of their scenes (written from data without "
                "them, or before records carried them: write them again)"
            )
        )
    if not any(example.objects for example in data):  # cheaper than building counts_array to find it empty
        return "no image of the data says what its scene holds (the synthetic data does)"
    return ""


def where_possible(training_config, context_heads: int, data, log=print):
    """The training config, with no counting loss where this model and data cannot train one (said in a line)."""
    reason = off_reason(context_heads, data)
    if not (training_config.count_loss_weight and reason):
        return training_config
    log(f"no counting loss: {reason}")
    return dataclasses.replace(training_config, count_loss_weight=0.0)
