"""Small previews of indexed images, made once and kept beside them (captioning.search.store).

A gallery of originals downloads every file whole (a 3000x2000 JPEG for a card 160 px wide) and lets the browser
scale it, badly. A thumbnail fits the image in a square of `size` pixels with Lanczos resampling, never enlarges
it (the page draws a small original with sharp pixels itself), and is a WebP: a few kilobytes, with alpha.
"""

import io

from PIL import Image, ImageOps

THUMBNAIL_SIZE = 192  # pixels of the longer side: a card's width at twice the pixel density
MEDIA_TYPE = "image/webp"
_QUALITY = 82


def make_thumbnail(data: bytes, size: int = THUMBNAIL_SIZE) -> bytes:
    """A WebP of the image's first frame, upright (EXIF orientation applied), at most `size` pixels a side."""
    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)
        frame = ImageOps.exif_transpose(image)
        frame = frame.convert("RGBA" if frame.mode in ("RGBA", "LA", "PA") or "transparency" in frame.info else "RGB")
        frame.thumbnail((size, size), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        frame.save(buffer, "WEBP", quality=_QUALITY)
    return buffer.getvalue()
