"""Checks that bytes are an image the model can decode, before anything is stored or embedded."""

import io
import warnings

from PIL import Image

FORMATS = ("JPEG", "PNG", "BMP", "GIF")  # what the exported graph's decode_image reads
MAX_PIXELS = 50_000_000  # a larger picture is more likely a decompression bomb than a photo


class ImageError(ValueError):
    """Bytes that are not a decodable JPEG, PNG, BMP or GIF."""


def image_size(data: bytes) -> tuple:
    """(width, height) of a fully decodable image in a supported format; ImageError otherwise."""
    if not data:
        raise ImageError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in FORMATS:
                    raise ImageError(f"unsupported image format {image.format} (use JPEG, PNG, BMP or GIF)")
                if image.width * image.height > MAX_PIXELS:
                    raise ImageError(f"image of {image.width}x{image.height} pixels is too large")
                image.load()  # decodes every pixel: catches truncated files
                return image.width, image.height
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageError("not a readable image (JPEG, PNG, BMP or GIF)") from None
