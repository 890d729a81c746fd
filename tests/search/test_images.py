"""What an image may cost: pixels x frames and frames, read from the headers before any pixel is decoded."""

import io

import pytest
from PIL import Image

from captioning.search.images import ImageError, ImageLimits, check_decoding_cost, image_size
from tests.helpers import animated_gif



def png(side):
    buffer = io.BytesIO()
    Image.new("RGB", (side, side)).save(buffer, "PNG")
    return buffer.getvalue()


def test_an_animation_costs_its_pixels_times_its_frames():
    animation = animated_gif(5, 100)
    assert image_size(animation, ImageLimits(max_pixels=50_000)) == (100, 100)
    for check in (image_size, check_decoding_cost):
        with pytest.raises(ImageError, match=r"100x100 pixels x 5 frames is over the limit of 49999 pixels "
                                             r"\(--max_image_pixels\)"):
            check(animation, ImageLimits(max_pixels=49_999))
        with pytest.raises(ImageError, match=r"animation of 5 frames is over the limit of 4 frames "
                                             r"\(--max_image_frames\)"):
            check(animation, ImageLimits(max_frames=4))


def test_a_still_image_past_the_pixel_limit_is_refused_before_decoding():
    with pytest.raises(ImageError, match=r"300x300 pixels is over the limit of 80000 pixels"):
        image_size(png(300), ImageLimits(max_pixels=80_000))
    # Pillow's own bomb check (far above any sane limit) also reads as the limit, not as an unreadable file.
    huge = io.BytesIO()
    Image.new("1", (20000, 20000)).save(huge, "PNG")
    with pytest.raises(ImageError, match="--max_image_pixels"):
        check_decoding_cost(huge.getvalue())


def test_bytes_that_are_no_image_are_left_to_the_model():
    assert check_decoding_cost(b"not an image") is None
    with pytest.raises(ImageError, match="not a readable image"):
        image_size(b"not an image")
