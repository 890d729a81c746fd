"""Images as a notebook holds them (a path, encoded bytes, a PIL image, a numpy array) turned into the encoded
bytes a model's signatures take; arrays and PIL images are encoded as PNG (lossless)."""

import io
import os

import numpy as np
from PIL import Image

from captioning.data.validation import image_data_problem
from captioning.util.errors import InvalidInput

_PROBLEMS = {
    "unreadable_image": "not a readable image",
    "unsupported_format": "unsupported image format (use JPEG, PNG, BMP or GIF)",
}


class ImageInputError(InvalidInput):
    """An image the model cannot take; the message names which one and why."""


def _png(image: Image.Image) -> bytes:
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _array_png(array: np.ndarray, name: str) -> bytes:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)) or not array.size:
        raise ImageInputError(f"{name}: an array must be H x W, H x W x 3 or H x W x 4, got shape {array.shape}")
    if array.dtype.kind == "f":
        if not np.all((array >= 0) & (array <= 1)):
            raise ImageInputError(f"{name}: a float array must hold values in [0, 1]")
        array = np.round(array * 255)
    elif array.dtype != np.uint8 and (array.dtype.kind not in "iu" or array.min() < 0 or array.max() > 255):
        raise ImageInputError(f"{name}: an integer array must hold values in 0..255")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return _png(Image.fromarray(array.astype(np.uint8)))


def image_bytes(image, name: str = "image") -> bytes:
    """The encoded bytes of one image; ImageInputError (naming `name`) for a missing, corrupt or odd one."""
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise ImageInputError(f"{name}: no such file {path}")
        with open(path, "rb") as file:
            data = file.read()
        name = f"{name} ({path})"
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    elif isinstance(image, Image.Image):
        return _png(image)
    elif isinstance(image, np.ndarray):
        return _array_png(image, name)
    else:
        raise ImageInputError(
            f"{name}: give a path, encoded bytes, a PIL image or a numpy array, not {type(image).__name__}"
        )
    problem = image_data_problem(io.BytesIO(data))
    if problem:
        raise ImageInputError(f"{name}: {_PROBLEMS[problem]}")
    return data


def images_bytes(images) -> list:
    """A list of images (or one image) as a list of encoded bytes, each named by its place in an error."""
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)) or (
        isinstance(images, np.ndarray) and images.ndim <= 3 and images.dtype != object
    ):
        images = [images]  # one image, not a list of them
    images = list(images)
    if not images:
        raise ImageInputError("no images: give at least one")
    return [image_bytes(image, f"image {n}") for n, image in enumerate(images)]
