"""A content-addressed folder of the indexed images, their cached encoder features and their thumbnails.

Stage 2 of a search rescores the candidates from these files, and re-indexing for a new model version re-embeds
them, so an image added from a URL or an upload needs nothing outside the index folder. Every file is written to
a temporary name and renamed into place: a crash leaves either the whole file or none.
"""

import hashlib
import io
import os
import tempfile

import numpy as np

from captioning.search.thumbnails import make_thumbnail

# Cached features are stored in float16: half the disk (32 KB per image for the default model's 8x8x256), the
# same stage-2 rankings and scores to ~1e-3 (scripts/benchmark_index.py --parts features;
# docs/search.md, "Search figures").
# Files written in float32 by earlier versions still load.
FEATURES_DTYPE = np.float16


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomically(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".staging-")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        os.replace(staging, path)
    except BaseException:
        os.unlink(staging)
        raise


class ImageStore:
    def __init__(self, root: str):
        self.root = root

    def _image_path(self, digest: str) -> str:
        return os.path.join(self.root, "images", digest[:2], digest)

    def _features_path(self, version: int, digest: str) -> str:
        return os.path.join(self.root, "features", f"v{version}", digest[:2], digest + ".npy")

    def _thumbnail_path(self, size: int, digest: str) -> str:
        return os.path.join(self.root, "thumbnails", str(size), digest[:2], digest + ".webp")

    def put_image(self, digest: str, data: bytes) -> None:
        if not os.path.exists(self._image_path(digest)):
            _write_atomically(self._image_path(digest), data)

    def image(self, digest: str) -> bytes:
        with open(self._image_path(digest), "rb") as f:
            return f.read()

    def thumbnail(self, digest: str, size: int) -> bytes:
        """The image's thumbnail (captioning.search.thumbnails), made from the stored image on first use and kept."""
        path = self._thumbnail_path(size, digest)
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            data = make_thumbnail(self.image(digest), size)
            _write_atomically(path, data)
            return data

    def put_features(self, version: int, digest: str, features: np.ndarray) -> None:
        path = self._features_path(version, digest)
        if not os.path.exists(path):
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(features, FEATURES_DTYPE))
            _write_atomically(path, buffer.getvalue())

    def features(self, version: int, digests: list):
        """Stacked float32 features [N, G, D] of these images, or None when any of them has none cached."""
        try:
            return np.stack([np.load(self._features_path(version, digest)) for digest in digests]).astype(np.float32)
        except FileNotFoundError:
            return None

    def remove(self, digest: str) -> None:
        """Drops the image, its features of every version and its thumbnails (after its index entries are gone)."""
        paths = [self._image_path(digest)]
        for folder, suffix in (("features", ".npy"), ("thumbnails", ".webp")):
            root = os.path.join(self.root, folder)
            if os.path.isdir(root):
                paths += [os.path.join(root, kind, digest[:2], digest + suffix) for kind in os.listdir(root)]
        for path in paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
