"""Checks that bytes are an image the model can decode, at a bounded cost, before anything is stored or embedded.

The exported graph's decoder (`tf.io.decode_image`, expand_animations=False) returns an animation's first frame
but decompresses every frame first: a 1 MB GIF of 200 frames of 2000x2000 costs it 10 s and 800 MB. So the
pixels an image costs are width x height x frames, read from its headers before any pixel is decoded, and they
have a limit; here only the first frame is decoded.
"""

import dataclasses
import io
import warnings

from PIL import Image

FORMATS = ("JPEG", "PNG", "BMP", "GIF")  # what the exported graph's decode_image reads
# A 40-megapixel photo; a larger picture is more likely a decompression bomb. Checked here in Python, with no
# TensorFlow, before an image reaches the model, whose graph has its own bound (data.images.MAX_IMAGE_PIXELS).
MAX_PIXELS = 40_000_000
MAX_FRAMES = 100


class ImageError(ValueError):
    """Bytes that are not a decodable JPEG, PNG, BMP or GIF, or an image past a limit."""


@dataclasses.dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = MAX_PIXELS  # width x height x frames: what decoding every frame would take
    max_frames: int = MAX_FRAMES  # frames of an animation


def _check_cost(image, limits: ImageLimits) -> None:
    frames = getattr(image, "n_frames", 1)  # reads the frames' headers, decodes no pixel
    if frames > limits.max_frames:
        raise ImageError(f"animation of {frames} frames is over the limit of {limits.max_frames} frames "
                         "(--max_image_frames)")
    if image.width * image.height * frames > limits.max_pixels:
        size = f"{image.width}x{image.height} pixels" + (f" x {frames} frames" if frames > 1 else "")
        raise ImageError(f"image of {size} is over the limit of {limits.max_pixels} pixels (--max_image_pixels)")


def image_size(data: bytes, limits: ImageLimits = ImageLimits()) -> tuple:
    """(width, height) of a decodable image in a supported format within the limits; ImageError otherwise."""
    if not data:
        raise ImageError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in FORMATS:
                    raise ImageError(f"unsupported image format {image.format} (use JPEG, PNG, BMP or GIF)")
                _check_cost(image, limits)
                image.seek(0)
                image.load()  # decodes every pixel of the first frame: catches truncated files
                return image.width, image.height
    except ImageError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise _too_many_pixels(limits) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ImageError("not a readable image (JPEG, PNG, BMP or GIF)") from None


def check_decoding_cost(data: bytes, limits: ImageLimits = ImageLimits()) -> None:
    """ImageError when bytes that look like an image would cost the graph's decoder more than the limits allow;
    nothing for bytes that do not (the model rejects those itself). Reads headers only."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                _check_cost(image, limits)
    except ImageError:
        raise
    except Image.DecompressionBombError:  # Pillow's own limit, far above any sane max_pixels
        raise _too_many_pixels(limits) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        return


def _too_many_pixels(limits: ImageLimits) -> ImageError:
    return ImageError(f"image is over the limit of {limits.max_pixels} pixels (--max_image_pixels)")
