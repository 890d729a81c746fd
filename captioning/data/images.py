"""Image decoding and resizing, shared by the training pipeline and the exported graph.

Decoding is bounded before it allocates: the pixel count is read from the file's header (JPEG, PNG, GIF, BMP,
WebP) by the decoder's own rules and checked against MAX_IMAGE_PIXELS, bytes the decoder takes but whose size
cannot be read are refused, and a GIF is cut after its first frame, since TensorFlow's GIF decoder reads every
frame even when it returns only the first. captioning.data.image_headers is the same reading in Python.
"""

import tensorflow as tf

# A larger picture is more likely a decompression bomb than a photo: 50 megapixels decode to 600 MB of float32.
MAX_IMAGE_PIXELS = 50_000_000

_GIF_EXTENSION, _GIF_IMAGE, _GIF_TRAILER = 0x21, 0x2C, b"\x3b"
UNMEASURABLE = -1  # header_pixels of bytes the decoder would take but whose size cannot be read first


def _is_gif(image_bytes: tf.Tensor) -> tf.Tensor:
    return tf.equal(tf.strings.substr(image_bytes, 0, 4), b"GIF8")  # what tf.io.decode_image looks for


def _unsigned(data, start, length: int, big_endian: bool) -> tf.Tensor:
    """The unsigned integer in bytes [start, start + length) of `data`, as int64 (0 past the end)."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, start, length), tf.uint8), tf.int64)
    raw = tf.pad(raw, [[0, length - tf.size(raw)]])
    weights = [256**i for i in range(length)]
    return tf.reduce_sum(raw * tf.constant(weights[::-1] if big_endian else weights, tf.int64))


def _webp_pixels(image_bytes: tf.Tensor) -> tf.Tensor:
    """A still WebP's width * height from its first chunk (VP8, VP8L or VP8X); UNMEASURABLE for an animation or
    another chunk."""
    chunk = tf.strings.substr(image_bytes, 12, 4)

    def lossy():  # 14-bit width and height after the frame tag and start code
        return (_unsigned(image_bytes, 26, 2, big_endian=False) % 2**14) * (
            _unsigned(image_bytes, 28, 2, big_endian=False) % 2**14
        )

    def lossless():  # after the signature byte: 14 bits of width - 1, 14 of height - 1
        bits = _unsigned(image_bytes, 21, 4, big_endian=False)
        return (bits % 2**14 + 1) * (bits // 2**14 % 2**14 + 1)

    def extended():  # flags, 3 reserved bytes, 24 bits each of canvas width - 1 and height - 1
        animated = tf.equal(_unsigned(image_bytes, 20, 1, big_endian=False) // 2 % 2, 1)
        pixels = (_unsigned(image_bytes, 24, 3, big_endian=False) + 1) * (
            _unsigned(image_bytes, 27, 3, big_endian=False) + 1
        )
        return tf.where(animated, tf.constant(UNMEASURABLE, tf.int64), pixels)

    return tf.case(
        [(tf.equal(chunk, b"VP8 "), lossy), (tf.equal(chunk, b"VP8L"), lossless), (tf.equal(chunk, b"VP8X"), extended)],
        default=lambda: tf.constant(UNMEASURABLE, tf.int64),
    )


def header_pixels(image_bytes: tf.Tensor) -> tf.Tensor:
    """The pixels (int64) TensorFlow's decoder allocates for these bytes, read from the header without decoding,
    by the decoder's own rules: a JPEG's frame header, a PNG's IHDR, a BMP's info header, a still WebP's first
    chunk, and for a GIF the larger of its logical screen and its first frame's own descriptor (the frame is
    decoded at its own size; decode_first_frame decodes no other frame). 0 for bytes of no format the decoder
    takes (it then rejects them); UNMEASURABLE for JPEG XL, an animated WebP or a GIF whose first frame cannot
    be found."""

    def jpeg():
        shape = tf.cast(tf.io.extract_jpeg_shape(image_bytes), tf.int64)
        return shape[0] * shape[1]

    def bmp():
        height = _unsigned(image_bytes, 22, 4, big_endian=False)
        height = tf.where(height >= 2**31, 2**32 - height, height)  # a top-down BMP stores a negative height
        return _unsigned(image_bytes, 18, 4, big_endian=False) * height

    def gif():
        screen = _unsigned(image_bytes, 6, 2, big_endian=False) * _unsigned(image_bytes, 8, 2, big_endian=False)
        _, image_at = _gif_first_image(image_bytes)
        frame = _unsigned(image_bytes, image_at + 5, 2, big_endian=False) * _unsigned(
            image_bytes, image_at + 7, 2, big_endian=False
        )
        return tf.where(image_at < 0, tf.constant(UNMEASURABLE, tf.int64), tf.maximum(screen, frame))

    has_header = tf.strings.length(image_bytes) >= 26
    prefix = tf.strings.substr(image_bytes, 0, 4)
    is_webp = (
        (tf.strings.length(image_bytes) >= 30)
        & tf.equal(prefix, b"RIFF")
        & tf.equal(tf.strings.substr(image_bytes, 8, 4), b"WEBP")
    )
    is_jpeg_xl = tf.equal(tf.strings.substr(image_bytes, 0, 2), b"\xff\x0a") | tf.equal(
        tf.strings.substr(image_bytes, 0, 12), b"\x00\x00\x00\x0cJXL \r\n\x87\n"
    )
    return tf.case(
        [
            (tf.io.is_jpeg(image_bytes), jpeg),
            (
                has_header & tf.equal(prefix, b"\x89PNG"),
                lambda: _unsigned(image_bytes, 16, 4, big_endian=True) * _unsigned(image_bytes, 20, 4, big_endian=True),
            ),
            (has_header & _is_gif(image_bytes), gif),
            (has_header & tf.equal(tf.strings.substr(image_bytes, 0, 2), b"BM"), bmp),
            (is_webp, lambda: _webp_pixels(image_bytes)),
            (is_jpeg_xl, lambda: tf.constant(UNMEASURABLE, tf.int64)),
        ],
        default=lambda: tf.constant(0, tf.int64),
    )


def _gif_color_table_bytes(packed: tf.Tensor) -> tf.Tensor:
    return tf.where(packed >= 128, 3 * tf.bitwise.left_shift(2, packed % 8), 0)


def _gif_first_image(image_bytes: tf.Tensor) -> tuple:
    """(end, image_at): where a GIF's first image ends and where its descriptor (0x2C) starts, -1 when the walk
    finds none. Walks the blocks (extensions, then the first image's data sub-blocks) without decoding."""
    raw = tf.cast(tf.io.decode_raw(image_bytes, tf.uint8), tf.int32)
    size = tf.size(raw)
    at = lambda i: raw[tf.minimum(i, size - 1)]  # noqa: E731  (a read past the end stops the walk below)
    block, extension_data, image_data, done = 0, 1, 2, 3

    def step(position, state, image_at):
        byte = at(position)

        def next_block():
            return tf.case(
                [
                    (tf.equal(byte, _GIF_EXTENSION), lambda: (position + 2, extension_data, image_at)),
                    # separator, 8 bytes of descriptor, packed flags, [local colour table], LZW code size
                    (
                        tf.equal(byte, _GIF_IMAGE),
                        lambda: (position + 11 + _gif_color_table_bytes(at(position + 9)), image_data, position),
                    ),
                ],
                default=lambda: (position, done, image_at),
            )

        def sub_block():  # a zero length ends the sub-blocks
            return tf.cond(
                tf.equal(byte, 0),
                lambda: (position + 1, tf.where(tf.equal(state, extension_data), block, done), image_at),
                lambda: (position + byte + 1, state, image_at),
            )

        return tf.cond(tf.equal(state, block), next_block, sub_block)

    start = 13 + _gif_color_table_bytes(at(10))  # header, logical screen descriptor, [global colour table]
    end, _, image_at = tf.while_loop(
        lambda position, state, image_at: (state != done) & (position < size), step, (start, block, tf.constant(-1))
    )
    return end, image_at


def gif_first_frame(image_bytes: tf.Tensor) -> tf.Tensor:
    """A GIF cut after its first image, with the trailer appended. Bytes it cannot walk are returned unchanged."""
    end, _ = _gif_first_image(image_bytes)
    return tf.cond(
        end < tf.strings.length(image_bytes),
        lambda: tf.strings.substr(image_bytes, 0, end) + _GIF_TRAILER,
        lambda: image_bytes,
    )


def decode_first_frame(image_bytes: tf.Tensor, max_pixels: int = MAX_IMAGE_PIXELS) -> tf.Tensor:
    """One encoded JPEG/PNG/BMP/GIF -> uint8 [H, W, 3], a GIF's first frame. More than `max_pixels` pixels, or
    undecodable bytes, raise InvalidArgumentError (INVALID_ARGUMENT under TF Serving) before anything is decoded."""
    pixels = header_pixels(image_bytes)
    checks = [
        tf.debugging.assert_none_equal(
            pixels,
            tf.constant(UNMEASURABLE, tf.int64),
            message="image size cannot be read before decoding (JPEG XL, animated WebP or a GIF without an "
            "image); use JPEG, PNG, BMP, GIF or WebP",
        ),
        tf.debugging.assert_less_equal(
            pixels,
            tf.constant(max_pixels, tf.int64),
            message=f"image too large: more than {max_pixels} pixels (MAX_IMAGE_PIXELS)",
        ),
    ]
    with tf.control_dependencies(checks):
        image_bytes = tf.identity(image_bytes)
    image_bytes = tf.cond(_is_gif(image_bytes), lambda: gif_first_frame(image_bytes), lambda: image_bytes)
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def decode_and_resize(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """One encoded JPEG/PNG/BMP/GIF -> float32 [image_size, image_size, 3] with values in [0, 255].

    A GIF's first frame is used. Undecodable or too large images raise InvalidArgumentError, which TF Serving
    reports as INVALID_ARGUMENT.
    """
    image = tf.cast(decode_first_frame(image_bytes), tf.float32)
    resized = lambda: tf.clip_by_value(  # noqa: E731
        tf.image.resize(image, [image_size, image_size], antialias=True), 0.0, 255.0
    )
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
