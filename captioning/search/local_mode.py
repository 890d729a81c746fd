"""Converting an index folder written by earlier versions (qdrant-client's local mode in `<index_dir>/qdrant`)
to the embedded engine: every point's vector and payload are copied, nothing is embedded again.

A crash halfway leaves the old folder whole (it is removed only once every point is copied), and the copy is
idempotent (same ids), so the next open simply converts again.
"""

import os
import re
import shutil
import time
import warnings
from datetime import datetime

import numpy as np

from captioning.search.engine import COLLECTION_PREFIX, ORDER_FIELD, IndexBusyError

FOLDER = "qdrant"
_PAGE = 1000


def legacy_path(index_dir: str):
    """The old local-mode folder of `index_dir`, or None when it has none."""
    path = os.path.join(index_dir, FOLDER)
    return path if os.path.isfile(os.path.join(path, "meta.json")) else None


def _added_us(payload: dict, earlier_in_second: dict) -> int:
    """The gallery order of an old point: its `added` time (whole seconds) plus how many points of that second
    came before it, which keeps it unique."""
    try:
        seconds = int(datetime.fromisoformat(payload["added"]).timestamp())
    except (KeyError, TypeError, ValueError):
        seconds = 0
    earlier_in_second[seconds] = earlier_in_second.get(seconds, -1) + 1
    return seconds * 1_000_000 + earlier_in_second[seconds]


def convert(path: str, engine) -> str:
    """Copies every collection of the local-mode folder `path` into `engine`, removes the folder; one line saying
    what was done."""
    started = time.monotonic()
    with warnings.catch_warnings():
        # qdrant-client warns about local mode above 20,000 points: being moved off it is the cure.
        warnings.filterwarnings("ignore", message="Local mode is not recommended", category=UserWarning)
        copied = _copy(path, engine)
    shutil.rmtree(path)
    counts = ", ".join(f"{n} images of model version {v}" for v, n in sorted(copied.items())) or "no images"
    return (
        f"converted the old index in {path} (qdrant-client local mode) to Qdrant Edge: {counts} copied "
        f"without re-embedding in {time.monotonic() - started:.1f} s"
    )


def _copy(path: str, engine) -> dict:
    """{model version: points copied} from the local-mode folder `path` into `engine`."""
    from qdrant_client import QdrantClient

    try:
        client = QdrantClient(path=path)
    except RuntimeError as error:
        if "already accessed" in str(error):
            raise IndexBusyError(f"{path}: the old index is open in another process; stop it first") from None
        raise
    copied = {}
    try:
        for collection in client.get_collections().collections:
            match = re.fullmatch(COLLECTION_PREFIX + r"(\d+)", collection.name)
            if not match:
                continue
            version, offset, copied_here, per_second = int(match.group(1)), None, 0, {}
            while True:
                points, offset = client.scroll(
                    collection.name, offset=offset, limit=_PAGE, with_payload=True, with_vectors=True
                )
                payloads = [{**point.payload, ORDER_FIELD: _added_us(point.payload, per_second)} for point in points]
                copied_here += len(points)
                if points:
                    engine.upsert(
                        version, [str(p.id) for p in points], np.array([p.vector for p in points], np.float32), payloads
                    )
                if offset is None:
                    break
            copied[version] = copied_here
    finally:
        client.close()
    return copied
