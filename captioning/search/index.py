"""The image index: one collection per model version (embeddings of one version mean nothing to another), plus
the image store.

Two engines behind one interface: Qdrant Edge in `<index_dir>/edge` (embedded: nothing to start; the default) or
a Qdrant server or cluster with `qdrant_url` (`edge_engine`, `server_engine`). A point's id is derived from the
image's content hash, so an image is in a collection at most once. Its payload: source, sha256, bytes, width,
height, added (UTC), added_us (the gallery's order), model_version. The indexer writes a batch's images to the
store before their points, and the points of a batch in one update: a crash loses at most the batch in flight
and never leaves a point without its image. A folder written by earlier versions (qdrant-client's local mode)
is converted on open (`local_mode`).
"""

import logging
import os
import time
import uuid

import numpy as np

from captioning.search import local_mode
from captioning.search.edge_engine import EdgeEngine
from captioning.search.engine import ORDER_FIELD, Hit, IndexBusyError, ModelVersionError, collection_name
from captioning.search.server_engine import ServerEngine
from captioning.search.store import ImageStore

__all__ = ["ImageIndex", "Hit", "IndexBusyError", "ModelVersionError", "collection_name", "point_id"]
EDGE_FOLDER = "edge"

log = logging.getLogger(__name__)


def point_id(digest: str) -> str:
    """The point id of an image: a UUID made of the first 128 bits of its SHA-256."""
    return str(uuid.UUID(hex=digest[:32]))


def _point_ids(ids: list) -> list:
    """The ids that can name a point (UUIDs): anything else names no image, and Qdrant would reject the request."""
    kept = []
    for image_id in ids:
        try:
            kept.append(str(uuid.UUID(str(image_id))))
        except ValueError:
            pass
    return kept


class ImageIndex:
    def __init__(self, index_dir: str, qdrant_url: str = None, engine=None):
        """`engine` overrides the choice by `qdrant_url` (tests pass a ServerEngine on qdrant-client's local mode)."""
        self.index_dir = index_dir
        os.makedirs(index_dir, exist_ok=True)
        self.store = ImageStore(index_dir)
        if engine is None and qdrant_url:
            engine = ServerEngine.connect(qdrant_url)
        elif engine is None:
            engine = EdgeEngine(os.path.join(index_dir, EDGE_FOLDER))
            old = local_mode.legacy_path(index_dir)
            if old:
                try:
                    log.warning(local_mode.convert(old, engine))
                except BaseException:
                    engine.close()
                    raise
        self.engine = engine
        self._last_stamp = 0
        self.location = qdrant_url or os.path.join(index_dir, EDGE_FOLDER)

    def close(self) -> None:
        self.engine.close()

    def versions(self, exact: bool = True) -> dict:
        """{model version: image count} of every collection in the index (`exact=False`: cheap, may still count
        deleted images)."""
        return self.engine.versions(exact)

    def check_version(self, version: int) -> None:
        """ModelVersionError when this version has no images but another version does (the model changed). Runs
        before every search, so it counts cheaply: an exact count of a million points took 80 ms."""
        versions = self.versions(exact=False)
        others = {v: n for v, n in versions.items() if v != version and n}
        if not versions.get(version) and others:
            old = max(others)
            raise ModelVersionError(
                f"the index holds {others[old]} images embedded by model version {old}, but the model is version "
                f"{version}; embeddings of one version mean nothing to another: re-index them with "
                f"`python -m captioning.search reindex --index_dir {self.index_dir} --model_dir MODEL` "
                "(or POST /api/reindex on the server)"
            )

    def existing(self, version: int, ids: list) -> set:
        """The ids among `ids` that this version's collection holds."""
        return self.engine.existing(version, _point_ids(ids))

    def upsert(self, version: int, ids: list, vectors: np.ndarray, payloads: list) -> None:
        """Writes these points in one update; stamps each payload's gallery order unless it carries one."""
        first = max(time.time_ns() // 1000, self._last_stamp + 1)
        payloads = [{ORDER_FIELD: first + n, **payload} for n, payload in enumerate(payloads)]
        self._last_stamp = first + len(payloads)
        self.engine.upsert(version, ids, np.asarray(vectors, np.float32), payloads)

    def search(self, version: int, vector: np.ndarray, limit: int) -> list:
        """The `limit` images nearest `vector` (cosine), best first."""
        return self.engine.search(version, vector, limit)

    def get(self, version: int, ids: list) -> dict:
        """{id: payload} of the ids this version holds."""
        return self.engine.get(version, _point_ids(ids))

    def vector(self, version: int, image_id: str):
        """The stored embedding of one image, or None when this version does not hold it."""
        ids = _point_ids([image_id])
        if not ids:
            return None
        # A page of one from its own id: scrolls run in id order, inclusive of the offset.
        page, _ = self.engine.scroll(version, ids[0], 1, True)
        return page[0][2] if page and page[0][0] == ids[0] else None

    def delete(self, version: int, ids: list) -> list:
        """Removes these ids (and their stored images once no version refers to them); returns those removed."""
        payloads = self.get(version, ids)
        if payloads:
            self.engine.delete(version, list(payloads))
            still_used = set()
            for other in self.versions():
                still_used |= self.existing(other, list(payloads))
            for image_id, payload in payloads.items():
                if image_id not in still_used:
                    self.store.remove(payload["sha256"])
        return list(payloads)

    def count(self, version: int) -> int:
        return self.engine.count(version)

    def scroll(self, version: int, offset: str = None, limit: int = 100) -> tuple:
        """(a page of (id, payload) in id order, the next page's offset or None)."""
        return self.engine.scroll(version, offset, limit)

    def newest(self, version: int, before: int = None, limit: int = 100) -> tuple:
        """(a page of (id, payload), newest first, the next page's `before` or None): the gallery."""
        page = self.engine.newest(version, before, limit + 1)
        more = len(page) > limit
        page = page[:limit]
        return page, (page[-1][1][ORDER_FIELD] - 1 if more else None)

    def all_entries(self, version: int, with_vectors: bool = False, page_size: int = 256):
        """Every (id, payload) of a version, or (id, payload, vector), page by page in id order."""
        offset = None
        while True:
            page, offset = self.engine.scroll(version, offset, page_size, with_vectors)
            yield from page
            if offset is None:
                return

    def optimize(self, version: int) -> bool:
        """Builds the embedded engine's HNSW graph where a segment outgrew exact search; True if it did any work."""
        return self.engine.optimize(version)

    def unindexed(self, version: int) -> int:
        """Points searched by scanning because no HNSW graph covers them yet (0 on a server, which builds its own)."""
        return self.engine.unindexed(version)
