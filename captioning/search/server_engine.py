"""A Qdrant server or cluster as the index engine, through qdrant-client: the same calls as the embedded engine.

The server builds its HNSW index and flushes by itself. A collection gets the embedded engine's settings (HNSW m and
ef_construct, int8 codes in RAM) and is searched with the same fixed ef, rescoring oversampled candidates in float;
`create_collection` also takes a cluster's shard and replica counts (docs/search.md, "Beyond one machine"). In
tests, qdrant-client's local mode (a folder or ":memory:") speaks the same API and stands in for a server.
"""

import re
import threading
import warnings

import numpy as np

from captioning.search.engine import (
    COLLECTION_PREFIX,
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    INT8_QUANTILE,
    ORDER_FIELD,
    OVERSAMPLING,
    Hit,
    SearchEf,
    collection_name,
)


class ServerEngine:
    def __init__(self, client):
        self.client = client
        self._ordered = set()  # collections known to have the gallery's order index
        # Local mode (the tests' stand-in) is not thread-safe; a server is, but one lock keeps both the same.
        self._lock = threading.RLock()
        self._ef = SearchEf(self.versions)

    @classmethod
    def connect(cls, url: str) -> "ServerEngine":
        from qdrant_client import QdrantClient

        return cls(QdrantClient(url=url, timeout=30, check_compatibility=False))  # no warning on the terminal

    def close(self) -> None:
        with self._lock:
            self.client.close()

    def _exists(self, version: int) -> bool:
        return self.client.collection_exists(collection_name(version))

    def versions(self, exact: bool = True) -> dict:
        with self._lock:
            names = [c.name for c in self.client.get_collections().collections]
            return {
                int(m.group(1)): self.client.count(name, exact=exact).count
                for name in names
                if (m := re.fullmatch(COLLECTION_PREFIX + r"(\d+)", name))
            }

    def count(self, version: int) -> int:
        with self._lock:
            return self.client.count(collection_name(version), exact=True).count if self._exists(version) else 0

    def create_collection(self, version: int, dim: int, shard_number: int = None, replication_factor: int = None):
        """Creates the version's collection with the index's settings; on a cluster, split into `shard_number`
        shards each held by `replication_factor` nodes (the server's defaults when None)."""
        from qdrant_client import models

        name = collection_name(version)
        with self._lock:
            self.client.create_collection(
                name,
                vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
                hnsw_config=models.HnswConfigDiff(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT),
                quantization_config=models.ScalarQuantization(
                    scalar=models.ScalarQuantizationConfig(
                        type=models.ScalarType.INT8, quantile=INT8_QUANTILE, always_ram=True
                    )
                ),
                shard_number=shard_number,
                replication_factor=replication_factor,
            )
            self._index_order_field(name)

    def _ensure_collection(self, version: int, dim: int) -> str:
        if not self._exists(version):
            self.create_collection(version, dim)
        return collection_name(version)

    def _index_order_field(self, name: str) -> None:
        """The gallery orders by ORDER_FIELD, which a server can only do with an integer index on it (creating it
        again is harmless: collections made by earlier versions get it on first use)."""
        from qdrant_client import models

        if name not in self._ordered:
            with warnings.catch_warnings():  # local mode says payload indexes do nothing there: true, and harmless
                warnings.simplefilter("ignore", UserWarning)
                self.client.create_payload_index(name, ORDER_FIELD, models.PayloadSchemaType.INTEGER, wait=True)
            self._ordered.add(name)

    def existing(self, version: int, ids: list) -> set:
        with self._lock:
            if not ids or not self._exists(version):
                return set()
            return {
                str(p.id)
                for p in self.client.retrieve(collection_name(version), ids, with_payload=False, with_vectors=False)
            }

    def upsert(self, version: int, ids: list, vectors: np.ndarray, payloads: list) -> None:
        from qdrant_client import models

        if not ids:
            return
        points = [
            models.PointStruct(id=i, vector=vector.tolist(), payload=payload)
            for i, vector, payload in zip(ids, np.asarray(vectors, np.float32), payloads)
        ]
        with self._lock:
            self.client.upsert(self._ensure_collection(version, vectors.shape[1]), points, wait=True)
            self._ef.forget(version)

    def search(self, version: int, vector: np.ndarray, limit: int) -> list:
        from qdrant_client import models

        params = models.SearchParams(
            hnsw_ef=self._ef(version, limit),
            quantization=models.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING),
        )
        with self._lock:
            if not self._exists(version):
                return []
            found = self.client.query_points(
                collection_name(version),
                query=np.asarray(vector, np.float32).tolist(),
                limit=limit,
                with_payload=True,
                search_params=params,
            ).points
        return [Hit(str(p.id), float(p.score), p.payload) for p in found]

    def get(self, version: int, ids: list) -> dict:
        with self._lock:
            if not ids or not self._exists(version):
                return {}
            return {
                str(p.id): p.payload for p in self.client.retrieve(collection_name(version), ids, with_payload=True)
            }

    def delete(self, version: int, ids: list) -> None:
        from qdrant_client import models

        with self._lock:
            if ids and self._exists(version):
                self.client.delete(collection_name(version), models.PointIdsList(points=list(ids)), wait=True)
                self._ef.forget(version)

    def scroll(self, version: int, offset: str = None, limit: int = 100, with_vectors: bool = False) -> tuple:
        with self._lock:
            if not self._exists(version):
                return [], None
            points, next_offset = self.client.scroll(
                collection_name(version), offset=offset, limit=limit, with_payload=True, with_vectors=with_vectors
            )
        entries = [
            (str(p.id), p.payload, np.asarray(p.vector, np.float32)) if with_vectors else (str(p.id), p.payload)
            for p in points
        ]
        return entries, (str(next_offset) if next_offset is not None else None)

    def newest(self, version: int, before: int = None, limit: int = 100) -> list:
        from qdrant_client import models

        with self._lock:
            if not self._exists(version):
                return []
            self._index_order_field(collection_name(version))
            order = models.OrderBy(key=ORDER_FIELD, direction=models.Direction.DESC, start_from=before)
            points, _ = self.client.scroll(collection_name(version), limit=limit, with_payload=True, order_by=order)
        return [(str(p.id), p.payload) for p in points]

    def optimize(self, version: int) -> bool:
        return False  # the server optimizes in the background

    def unindexed(self, version: int) -> int:
        return 0
