"""In-graph image decoding is bounded: the pixel count is read from the header before decoding, and a GIF is
decoded for its first frame only."""

import io
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from captioning.data.images import MAX_IMAGE_PIXELS, decode_first_frame, gif_first_frame, header_pixels


def encoded(image, format, **options):
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def png_header_claiming(width, height):
    """The start of a PNG whose header claims width x height (the pixel data never comes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


@pytest.mark.parametrize("format", ["PNG", "JPEG", "BMP", "GIF"])
def test_header_pixels_match_the_image(format):
    image = Image.new("RGB", (37, 11), (10, 200, 30))
    assert int(header_pixels(tf.constant(encoded(image, format)))) == 37 * 11


def test_header_pixels_of_other_bytes_are_zero():
    assert int(header_pixels(tf.constant(b"not an image at all, just some text"))) == 0


def test_an_image_past_the_pixel_limit_is_refused_before_decoding(monkeypatch):
    decoded = []
    real_decode = tf.io.decode_image
    monkeypatch.setattr(
        tf.io, "decode_image", lambda *args, **kwargs: decoded.append(args) or real_decode(*args, **kwargs)
    )
    side = int(MAX_IMAGE_PIXELS**0.5) + 1
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"more than {MAX_IMAGE_PIXELS} pixels"):
        decode_first_frame(tf.constant(png_header_claiming(side, side)))
    assert decoded == []  # refused from the header: the decoder was never handed the bytes
    # A header claiming a size within the limit reaches the decoder (which finds no pixel data).
    with pytest.raises(tf.errors.InvalidArgumentError):
        decode_first_frame(tf.constant(png_header_claiming(10, 10)))
    assert len(decoded) == 1


def test_an_animated_gif_is_cut_after_its_first_frame():
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).convert("P") for _ in range(20)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    cut = gif_first_frame(tf.constant(data)).numpy()
    assert len(cut) < len(data) / 10  # the decoder never sees the other 19 frames
    first = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(decode_first_frame(tf.constant(data)).numpy(), first)


def test_a_single_frame_gif_decodes_as_before():
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (30, 40, 3), dtype=np.uint8)).convert("P")
    data = encoded(image, "GIF")
    np.testing.assert_array_equal(
        decode_first_frame(tf.constant(data)).numpy(),
        tf.io.decode_image(data, channels=3, expand_animations=False).numpy(),
    )


def test_a_gif_frame_is_measured_at_its_own_size_not_the_screens():
    image = Image.new("P", (300, 200), 1)
    gif = bytearray(encoded(image, "GIF"))
    gif[3:6], gif[6:10] = b"88a", b"\1\0\1\0"  # any GIF8 version is decoded; the screen says 1x1
    assert int(header_pixels(tf.constant(bytes(gif)))) == 60_000
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 59999 pixels"):
        decode_first_frame(tf.constant(bytes(gif)), max_pixels=59_999)
    assert decode_first_frame(tf.constant(bytes(gif)), max_pixels=60_000).shape == (200, 300, 3)


@pytest.mark.parametrize("options", [{}, {"lossless": True}])
def test_a_still_webp_is_measured_and_decoded(options):
    data = encoded(Image.new("RGB", (37, 11), (10, 200, 30)), "WEBP", **options)
    assert int(header_pixels(tf.constant(data))) == 37 * 11
    assert decode_first_frame(tf.constant(data)).shape == (11, 37, 3)


def test_bytes_the_decoder_takes_but_whose_size_cannot_be_read_are_refused():
    frames = [Image.new("RGB", (20, 20), (40 * n, 0, 0)) for n in range(3)]
    animated_webp = encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:])
    for data in (animated_webp, b"\xff\x0a" + bytes(64)):
        with pytest.raises(tf.errors.InvalidArgumentError, match="size cannot be read before decoding"):
            decode_first_frame(tf.constant(data))
