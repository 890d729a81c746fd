"""What an image may cost: its frames' pixels and frames, read from the headers before any pixel is decoded."""

import io

import pytest
from PIL import Image

from captioning.search.images import ImageError, ImageLimits, decoding_cost, image_size
from tests.helpers import animated_gif


def png(side):
    buffer = io.BytesIO()
    Image.new("RGB", (side, side)).save(buffer, "PNG")
    return buffer.getvalue()


def test_an_animation_costs_its_pixels_times_its_frames():
    animation = animated_gif(5, 100)
    assert image_size(animation, ImageLimits(max_pixels=50_000)) == (100, 100)
    for check in (image_size, decoding_cost):
        with pytest.raises(
            ImageError,
            match=r"\(100x100 GIF of 5 frames\) decodes to 50000 pixels, over the limit "
            r"of 49999 pixels \(--max_image_pixels\)",
        ):
            check(animation, ImageLimits(max_pixels=49_999))
        with pytest.raises(
            ImageError,
            match=r"animation of 5 frames is over the limit of 4 frames "
            r"\(--max_image_frames\)",
        ):
            check(animation, ImageLimits(max_frames=4))


def test_a_still_image_past_the_pixel_limit_is_refused_before_decoding():
    with pytest.raises(ImageError, match=r"\(300x300 PNG\) decodes to 90000 pixels, over the limit of 80000"):
        image_size(png(300), ImageLimits(max_pixels=80_000))
    huge = io.BytesIO()
    Image.new("1", (20000, 20000)).save(huge, "PNG")
    with pytest.raises(ImageError, match="--max_image_pixels"):
        decoding_cost(huge.getvalue())


def test_a_gif_frame_larger_than_its_screen_costs_its_own_size_whatever_its_version():
    buffer = io.BytesIO()
    Image.new("P", (300, 300), 1).save(buffer, "GIF")
    gif = bytearray(buffer.getvalue())
    gif[3:6], gif[6:10] = b"88a", b"\1\0\1\0"  # Pillow cannot open it; TensorFlow decodes it at 300x300
    for check in (image_size, decoding_cost):
        with pytest.raises(ImageError, match=r"\(1x1 GIF\) decodes to 90000 pixels"):
            check(bytes(gif), ImageLimits(max_pixels=80_000))


def test_bytes_the_decoder_would_take_but_cannot_be_measured_are_refused():
    with pytest.raises(ImageError, match="JPEG XL"):
        decoding_cost(b"\xff\x0a" + bytes(64))


def test_bytes_that_are_no_image_are_left_to_the_model():
    assert decoding_cost(b"not an image") is None
    with pytest.raises(ImageError, match="not a readable image"):
        image_size(b"not an image")
