"""The pure-Python image header reader measures what TensorFlow's decoders would allocate, by their rules, and
never fails with anything but its own error, whatever the bytes."""

import io
import random

import pytest
from PIL import Image

from captioning.data.image_headers import HeaderError, ImageCost, measure
from tests.helpers import animated_gif

FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")


def encoded(image, format, **options):
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("format", FORMATS)
def test_each_format_tensorflow_decodes_is_measured(format):
    assert measure(encoded(Image.new("RGB", (37, 11), (1, 2, 3)), format)) == ImageCost(format, 37, 11, 1, 407)


@pytest.mark.parametrize("options", [{"lossless": True}, {"exif": b"Exif\0\0"}])
def test_lossless_and_extended_webp_are_measured(options):
    cost = measure(encoded(Image.new("RGBA", (37, 11), (1, 2, 3, 4)), "WEBP", **options))
    assert (cost.width, cost.height, cost.pixels) == (37, 11, 407)


def test_a_progressive_jpeg_with_metadata_is_measured_from_its_frame_header():
    data = encoded(Image.new("RGB", (300, 20)), "JPEG", progressive=True, exif=b"Exif\0\0" + b"x" * 5000)
    assert measure(data).pixels == 6000


def test_a_gif_costs_every_frame_at_its_own_size_whatever_its_version_and_screen():
    gif = bytearray(encoded(Image.new("P", (300, 200), 1), "GIF"))
    gif[3:6] = b"88a"  # TensorFlow decodes any GIF8 prefix; Pillow does not open this one
    gif[6:10] = b"\1\0\1\0"  # a 1x1 logical screen; the frame's descriptor still says 300x200
    assert measure(bytes(gif)) == ImageCost("GIF", 1, 1, 1, 60_000)
    assert measure(animated_gif(5, 100)) == ImageCost("GIF", 100, 100, 5, 50_000)


def test_a_gif_cut_inside_a_frame_still_costs_that_frame():
    data = animated_gif(3, 100)
    second = data.index(b"\x2c", data.index(b"\x2c") + 20)  # the second frame's descriptor
    assert measure(data[: second + 12]).frames == 2


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\xff\x0a" + b"\0" * 40, "JPEG XL"),
        (b"\0\0\0\x0cJXL \r\n\x87\n" + b"\0" * 40, "JPEG XL"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0", "cut short"),
        (b"\xff\xd8\xff\xda\0\x08", "no frame header"),
        (b"GIF89a\1", "cut short"),
    ],
)
def test_bytes_tensorflow_would_decode_but_that_cannot_be_measured_raise(data, message):
    with pytest.raises(HeaderError, match=message):
        measure(data)


def test_an_animated_webp_is_not_measured():
    frames = [Image.new("RGB", (20, 20), (40 * n, 0, 0)) for n in range(3)]
    with pytest.raises(HeaderError, match="animated WebP"):
        measure(encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:]))


@pytest.mark.parametrize("data", [b"", b"GIF7a", b"hello world, no image", b"RIFF\0\0\0\0WAVEfmt "])
def test_bytes_of_no_format_tensorflow_decodes_are_none(data):
    assert measure(data) is None


def test_random_and_truncated_bytes_raise_nothing_but_header_errors():
    rng = random.Random(0)
    samples = [encoded(Image.new("RGB", (29, 13), (5, 6, 7)), format) for format in FORMATS]
    samples.append(animated_gif(3, 40))
    inputs = []
    for sample in samples:
        inputs += [sample[:cut] for cut in rng.sample(range(len(sample)), min(40, len(sample)))]
        for _ in range(40):  # a few bytes overwritten anywhere, the prefix kept so the format is recognised
            mutated = bytearray(sample)
            for _ in range(rng.randint(1, 8)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            inputs.append(bytes(mutated))
    prefixes = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"RIFF\0\0\0\0WEBPVP8X", b"")
    inputs += [rng.choice(prefixes) + rng.randbytes(rng.randrange(64)) for _ in range(200)]
    measured = 0
    for data in inputs:
        try:
            cost = measure(data)
        except HeaderError:
            continue
        if cost is not None:
            assert cost.pixels >= 0 and cost.frames >= 0
            measured += 1
    assert measured > 100  # the fuzzing reached the parsers, not only the format check
