"""Checks that bytes are an image the model can decode, at a bounded cost, before anything is stored or embedded.

The exported graph's decoder (`tf.io.decode_image`, expand_animations=False) returns an animation's first frame
but decompresses every frame first: a 1 MB GIF of 200 frames of 2000x2000 costs it 10 s and 800 MB. So the
pixels an image costs are read from its headers by captioning.data.image_headers, by the rules TensorFlow's
decoders follow (each GIF frame at its own size), before any pixel is decoded, and they have a limit; here only
the first frame is decoded.
"""

import dataclasses
import io
import warnings

from PIL import Image

from captioning.data.image_headers import HeaderError, ImageCost, measure
from captioning.util.errors import InvalidInput

FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")  # what the exported graph's decode_image reads
# A 40-megapixel photo; a larger picture is more likely a decompression bomb. Checked here in Python, with no
# TensorFlow, before an image reaches the model, whose graph has its own bound (data.images.MAX_IMAGE_PIXELS).
MAX_PIXELS = 40_000_000
MAX_FRAMES = 100


class ImageError(InvalidInput):
    """Bytes that are not a decodable JPEG, PNG, BMP, GIF or WebP, or an image past a limit."""


@dataclasses.dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = MAX_PIXELS  # what decoding every frame would take (a GIF frame at its own size)
    max_frames: int = MAX_FRAMES  # frames of an animation


def _check_cost(cost: ImageCost, limits: ImageLimits) -> None:
    if cost.frames > limits.max_frames:
        raise ImageError(
            f"animation of {cost.frames} frames is over the limit of {limits.max_frames} frames (--max_image_frames)"
        )
    if cost.pixels > limits.max_pixels:
        size = f"{cost.width}x{cost.height} {cost.format}" + (f" of {cost.frames} frames" if cost.frames > 1 else "")
        raise ImageError(
            f"image ({size}) decodes to {cost.pixels} pixels, over the limit of {limits.max_pixels} "
            "pixels (--max_image_pixels)"
        )


def decoding_cost(data: bytes, limits: ImageLimits = ImageLimits()) -> ImageCost | None:
    """What the graph's decoder would spend on `data`, checked against the limits (ImageError past them, or when
    the bytes would be decoded but cannot be measured); None for bytes the decoder rejects as no image at all.
    Reads headers only."""
    try:
        cost = measure(data)
    except HeaderError as error:
        raise ImageError(str(error)) from None
    if cost is not None:
        _check_cost(cost, limits)
    return cost


def image_size(data: bytes, limits: ImageLimits = ImageLimits()) -> tuple:
    """(width, height) of a decodable image in a supported format within the limits; ImageError otherwise."""
    if not data:
        raise ImageError("empty file")
    if decoding_cost(data, limits) is None:
        raise ImageError("not a readable image (JPEG, PNG, BMP, GIF or WebP)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the cost is checked above
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in FORMATS:
                    raise ImageError(f"unsupported image format {image.format} (use JPEG, PNG, BMP, GIF or WebP)")
                image.seek(0)
                image.load()  # decodes every pixel of the first frame: catches truncated files
                return image.width, image.height
    except ImageError:
        raise
    except Image.DecompressionBombError:  # Pillow's own limit, far above any sane max_pixels
        raise ImageError(f"image is over the limit of {limits.max_pixels} pixels (--max_image_pixels)") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ImageError("not a readable image (JPEG, PNG, BMP, GIF or WebP)") from None
