"""The image index: one Qdrant collection per model version (docs/architecture.md, "The image index") plus the
image store.

Embedded Qdrant (qdrant-client's local mode, a folder under the index directory, nothing to start) by default;
a Qdrant server or cluster with `qdrant_url`, through the same calls. A point's id is derived from the image's
content hash, so an image is in a collection at most once. Its payload: source, sha256, bytes, width, height,
added (UTC), model_version. The image's bytes are written to the store before its point, so a point never
refers to a missing image, and each point is one write: a crash loses at most the points not yet written.
"""

import dataclasses
import os
import re
import threading
import uuid

import numpy as np

from captioning.search.store import ImageStore

COLLECTION_PREFIX = "images_v"


class ModelVersionError(RuntimeError):
    """The index holds embeddings of another model version than the one asked to search or add with."""


class IndexBusyError(RuntimeError):
    """Embedded Qdrant allows one process per folder, and another one (a server?) has it open."""


@dataclasses.dataclass
class Hit:
    id: str
    score: float  # cosine similarity of the image and query embeddings: the `contrastive` score
    payload: dict


def point_id(digest: str) -> str:
    """The point id of an image: a UUID made of the first 128 bits of its SHA-256."""
    return str(uuid.UUID(hex=digest[:32]))


def collection_name(version: int) -> str:
    return f"{COLLECTION_PREFIX}{int(version)}"


class ImageIndex:
    def __init__(self, index_dir: str, qdrant_url: str = None):
        from qdrant_client import QdrantClient

        self.index_dir = index_dir
        os.makedirs(index_dir, exist_ok=True)
        self.store = ImageStore(index_dir)
        self.location = qdrant_url or os.path.join(index_dir, "qdrant")
        if qdrant_url:
            self.client = QdrantClient(url=qdrant_url, timeout=30)
        else:
            try:
                self.client = QdrantClient(path=self.location)
            except RuntimeError as error:
                if "already accessed" in str(error):
                    raise IndexBusyError(
                        f"{index_dir}: the index is open in another process (a running server?); add and search "
                        "through that server's API, or stop it first") from None
                raise
        # Embedded Qdrant is not thread-safe; a server is, but one lock keeps both paths the same.
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self.client.close()

    def versions(self) -> dict:
        """{model version: image count} of every collection in the index."""
        with self._lock:
            names = [c.name for c in self.client.get_collections().collections]
            return {int(m.group(1)): self.client.count(name, exact=True).count
                    for name in names if (m := re.fullmatch(COLLECTION_PREFIX + r"(\d+)", name))}

    def check_version(self, version: int) -> None:
        """ModelVersionError when this version has no images but another version does (the model changed)."""
        versions = self.versions()
        others = {v: n for v, n in versions.items() if v != version and n}
        if not versions.get(version) and others:
            old = max(others)
            raise ModelVersionError(
                f"the index holds {others[old]} images embedded by model version {old}, but the model is version "
                f"{version}; embeddings of one version mean nothing to another: re-index them with "
                f"`python -m captioning.search reindex --index_dir {self.index_dir} --model_dir MODEL` "
                "(or POST /api/reindex on the server)")

    def _ensure_collection(self, version: int, dim: int) -> str:
        from qdrant_client import models

        name = collection_name(version)
        if not self.client.collection_exists(name):
            self.client.create_collection(name, vectors_config=models.VectorParams(size=dim,
                                                                                   distance=models.Distance.COSINE))
        return name

    def existing(self, version: int, ids: list) -> set:
        """The ids among `ids` that this version's collection holds."""
        name = collection_name(version)
        with self._lock:
            if not ids or not self.client.collection_exists(name):
                return set()
            return {str(p.id) for p in self.client.retrieve(name, ids, with_payload=False, with_vectors=False)}

    def upsert(self, version: int, ids: list, vectors: np.ndarray, payloads: list) -> None:
        from qdrant_client import models

        if not ids:
            return
        points = [models.PointStruct(id=i, vector=[float(x) for x in v], payload=p)
                  for i, v, p in zip(ids, vectors, payloads)]
        with self._lock:
            self.client.upsert(self._ensure_collection(version, vectors.shape[1]), points, wait=True)

    def search(self, version: int, vector: np.ndarray, limit: int) -> list:
        """The `limit` images nearest `vector` (cosine), best first."""
        name = collection_name(version)
        with self._lock:
            if not self.client.collection_exists(name):
                return []
            found = self.client.query_points(name, query=[float(x) for x in vector], limit=limit,
                                             with_payload=True).points
        return [Hit(str(p.id), float(p.score), p.payload) for p in found]

    def get(self, version: int, ids: list) -> dict:
        """{id: payload} of the ids this version holds."""
        name = collection_name(version)
        with self._lock:
            if not ids or not self.client.collection_exists(name):
                return {}
            return {str(p.id): p.payload for p in self.client.retrieve(name, ids, with_payload=True)}

    def delete(self, version: int, ids: list) -> list:
        """Removes these ids (and their stored images once no version refers to them); returns those removed."""
        from qdrant_client import models

        payloads = self.get(version, ids)
        if payloads:
            with self._lock:
                self.client.delete(collection_name(version), models.PointIdsList(points=list(payloads)), wait=True)
            still_used = set()
            for other in self.versions():
                still_used |= self.existing(other, list(payloads))
            for image_id, payload in payloads.items():
                if image_id not in still_used:
                    self.store.remove(payload["sha256"])
        return list(payloads)

    def count(self, version: int) -> int:
        return self.versions().get(version, 0)

    def scroll(self, version: int, offset: str = None, limit: int = 100) -> tuple:
        """(a page of (id, payload) in id order, the next page's offset or None)."""
        name = collection_name(version)
        with self._lock:
            if not self.client.collection_exists(name):
                return [], None
            points, next_offset = self.client.scroll(name, offset=offset, limit=limit, with_payload=True)
        return [(str(p.id), p.payload) for p in points], (str(next_offset) if next_offset is not None else None)

    def all_entries(self, version: int):
        """Every (id, payload) of a version, page by page."""
        offset = None
        while True:
            page, offset = self.scroll(version, offset, limit=256)
            yield from page
            if offset is None:
                return
