"""What training reads, whichever form the data takes: a list of examples (each image file read per caption)
or a TFRecords split (captioning.data.tfrecords). Each becomes a tf.distribute dataset for the strategy."""

import tensorflow as tf

from captioning.data import pipeline, tfrecords


def distributed_training_data(
    strategy: tf.distribute.Strategy,
    data,
    tokenizer,
    image_size: int,
    global_batch_size: int,
    seed: int,
    image_dropout: float,
    start_step: int,
    extras: dict = None,
):
    """`extras` (arrays with a row per example, pipeline.training_dataset) are for a list of examples only: TFRecords
    carry what the counting loss reads in each image's record."""
    if isinstance(data, tfrecords.ShardedRecords):  # each worker reads its own shards
        return strategy.distribute_datasets_from_function(
            lambda context: tfrecords.training_dataset(
                data, tokenizer, image_size, global_batch_size, seed, image_dropout, start_step, context
            )
        )
    # One stream of global batches that tf.distribute splits: every worker sees the same global batch.
    return strategy.experimental_distribute_dataset(
        pipeline.training_dataset(
            data, tokenizer, image_size, global_batch_size, seed, image_dropout, start_step, extras
        )
    )


def evaluation_data(data, tokenizer, image_size: int, global_batch_size: int) -> tf.data.Dataset:
    if isinstance(data, tfrecords.ShardedRecords):
        return tfrecords.evaluation_dataset(data, tokenizer, image_size, global_batch_size)
    return pipeline.evaluation_dataset(data, tokenizer, image_size, global_batch_size)


def size(data) -> int:
    """Captions in the data (examples or a TFRecords split)."""
    return data.num_captions if isinstance(data, tfrecords.ShardedRecords) else len(data)
