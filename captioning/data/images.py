"""Image decoding and resizing, shared by the training pipeline and the exported graph."""

import tensorflow as tf


def decode_and_resize(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """One encoded JPEG/PNG/BMP/GIF -> float32 [image_size, image_size, 3] with values in [0, 255].

    A GIF's first frame is used. Undecodable bytes raise InvalidArgumentError, which TF Serving reports as
    INVALID_ARGUMENT.
    """
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image = tf.cast(image, tf.float32)
    image.set_shape([None, None, 3])
    resized = lambda: tf.clip_by_value(  # noqa: E731
        tf.image.resize(image, [image_size, image_size], antialias=True), 0.0, 255.0)
    already_sized = tf.reduce_all(tf.shape(image)[:2] == image_size)
    image = tf.cond(already_sized, lambda: image, resized)
    return tf.ensure_shape(image, [image_size, image_size, 3])


def decode_batch(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """[B] encoded images -> float32 [B, image_size, image_size, 3]."""
    return tf.map_fn(
        lambda b: decode_and_resize(b, image_size),
        image_bytes,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
    )
