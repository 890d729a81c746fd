"""tf.data pipelines: (image path, caption) examples -> batches of pixels, token ids and image-dropout flags."""

import tensorflow as tf

from captioning.data.images import decode_and_resize
from captioning.data.text import Tokenizer

AUTOTUNE = tf.data.AUTOTUNE


def _indexed_examples(examples, extras: dict = None) -> tf.data.Dataset:
    """(image path, caption, extras) triples; `_numbered` later adds each one's position in the stream. `extras`
    maps names to arrays with a row per example (e.g. the counting loss's "object_counts"), which become features
    of the same names."""
    return tf.data.Dataset.from_tensor_slices(
        ([e.image_path for e in examples], [e.caption for e in examples], extras or {})
    )


def _numbered(dataset: tf.data.Dataset) -> tf.data.Dataset:
    return dataset.enumerate().map(lambda index, example: (*example, index))


def image_key(name: tf.Tensor) -> tf.Tensor:
    """An int64 naming an image (from its path or id), so the contrastive loss can tell two captions of one image
    in a batch."""
    return tf.strings.to_hash_bucket_fast(name, 2**62)


def _read_images(dataset: tf.data.Dataset, image_size: int) -> tf.data.Dataset:
    return dataset.map(
        lambda path, caption, extras, index: (
            decode_and_resize(tf.io.read_file(path), image_size),
            image_key(path),
            caption,
            index,
            extras,
        ),
        num_parallel_calls=AUTOTUNE,
    )


def null_image_draws(seed: int, image_dropout: float):
    """index [B] -> use_null_image [B]: image dropout drawn from each example's position in the stream, so it is
    the same on one replica or many, and after a resume."""

    def use_null_image(index):
        seeds = tf.stack([tf.fill(tf.shape(index), tf.constant(seed, tf.int64)), index], axis=1)
        draws = tf.map_fn(lambda s: tf.random.stateless_uniform([], seed=s), seeds, fn_output_signature=tf.float32)
        return draws < image_dropout

    return use_null_image


def never_null_image(index):
    return tf.zeros_like(index, tf.bool)


def to_features(tokenizer, use_null_image):
    def to_features(images, image_keys, captions, index, extras=None):
        tokens = tokenizer(captions)
        return {
            **(extras or {}),
            "images": images,
            "image_keys": image_keys,
            "input_ids": tokens["input_ids"],
            "target_ids": tokens["target_ids"],
            "mask": tokens["mask"],
            "use_null_image": use_null_image(index),
        }

    return to_features


def training_dataset(
    examples,
    tokenizer: Tokenizer,
    image_size: int,
    global_batch_size: int,
    seed: int,
    image_dropout: float,
    start_step: int = 0,
    extras: dict = None,
) -> tf.data.Dataset:
    """An endless, shuffled stream of global batches.

    The order depends only on `seed`, so resuming at `start_step` skips exactly the examples already seen
    (cheaply: the skip happens before any image is read). Image dropout is drawn per example from the example's
    position in the stream, so it is the same on one replica or many, and after a resume. Each array of `extras`
    (a row per example) adds a feature of its name.
    """
    dataset = _indexed_examples(examples, extras).shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
    dataset = _numbered(dataset.repeat()).skip(start_step * global_batch_size)
    dataset = _read_images(dataset, image_size).batch(global_batch_size, drop_remainder=True)
    return dataset.map(to_features(tokenizer, null_image_draws(seed, image_dropout))).prefetch(AUTOTUNE)


def evaluation_dataset(examples, tokenizer: Tokenizer, image_size: int, global_batch_size: int) -> tf.data.Dataset:
    """Every example once, in order, always with its real image."""
    dataset = _read_images(_numbered(_indexed_examples(examples)), image_size).batch(global_batch_size)
    return dataset.map(to_features(tokenizer, never_null_image)).prefetch(AUTOTUNE)
