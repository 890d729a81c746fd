"""The embedded engine: Qdrant Edge (Qdrant's own segment storage, WAL and HNSW, in process) in a folder.

One shard per model version, `<folder>/images_v<N>/`. Each `upsert` is one update, written to the shard's WAL
before it returns, so a `kill -9` loses at most the update in flight and the next open replays the rest; `close`
flushes the segments. A lock file keeps the folder to one process, as the WAL would, but with a clear message.

Search: segments holding fewer vectors than FULL_SCAN_VECTORS are scanned exactly; `optimize` builds an HNSW
graph and int8 codes (kept in RAM) over larger ones. A query walks the graph on the codes with a fixed ef and
rescores OVERSAMPLING times its limit in float (`engine`: the settings and why). Shards created before these
settings keep their own config (no int8 codes) and are searched with the same fixed ef.
"""

import fcntl
import os
import re
import threading

import numpy as np
from qdrant_edge import (
    CountRequest,
    Direction,
    Distance,
    EdgeConfig,
    EdgeOptimizersConfig,
    EdgeShard,
    EdgeVectorParams,
    HnswIndexConfig,
    Memory,
    OrderBy,
    PayloadSchemaType,
    Point,
    QuantizationSearchParams,
    Query,
    QueryRequest,
    ScalarQuantizationConfig,
    ScalarType,
    ScrollRequest,
    SearchParams,
    UpdateOperation,
)

from captioning.search.engine import (
    COLLECTION_PREFIX,
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    INT8_QUANTILE,
    ORDER_FIELD,
    OVERSAMPLING,
    Hit,
    IndexBusyError,
    SearchEf,
    collection_name,
)

# Exact search below this many vectors in a segment, HNSW above: an exact scan of 100,000 128-d vectors took
# 4 ms here (so about 1 ms at 20,000), and the HNSW build about 1.3 ms per vector on 2 shared cores: worth it only
# for large segments.
FULL_SCAN_VECTORS = 20_000
BUILD_SECONDS_PER_VECTOR = 0.0013  # measured at 100,000 (133 s): for the CLI's estimate


INT8_CODES = ScalarQuantizationConfig(type=ScalarType.Int8, quantile=INT8_QUANTILE, memory=Memory.Pinned)


def search_params(limit: int, ef: int) -> SearchParams:
    """A query's parameters: the walk's ef (at least the limit), int8 candidates rescored in float."""
    return SearchParams(
        hnsw_ef=max(ef, limit), quantization=QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING)
    )


def _kilobytes(vectors: int, dim: int) -> int:
    """Qdrant states its thresholds in KB of float32 vectors."""
    return max(1, vectors * dim * 4 // 1024)


class EdgeEngine:
    def __init__(self, folder: str):
        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        self._lock_file = open(os.path.join(folder, ".lock"), "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise IndexBusyError(
                f"{folder}: the index is open in another process (a running server?); add and "
                "search through that server's API, or stop it first"
            ) from None
        self._shards = {}  # version -> EdgeShard, opened on first use
        # One call at a time: the bindings hold the GIL through most calls anyway, and a lock keeps the
        # open-or-create of a shard from racing.
        self._lock = threading.RLock()
        self._ef = SearchEf(self.versions)

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.flush()
                shard.close()
            self._shards.clear()
            self._lock_file.close()

    def _path(self, version: int) -> str:
        return os.path.join(self.folder, collection_name(version))

    def _shard(self, version: int, dim: int = None):
        """The version's shard, or None when it has none and no `dim` to create it with."""
        shard = self._shards.get(version)
        if shard is None and os.path.exists(os.path.join(self._path(version), "edge_config.json")):
            shard = self._shards[version] = EdgeShard.load(self._path(version))
        elif shard is None and dim:
            shard = self._shards[version] = EdgeShard.create(self._path(version), self._config(dim))
            shard.update(UpdateOperation.create_field_index(ORDER_FIELD, PayloadSchemaType.Integer))
        return shard

    @staticmethod
    def _config(dim: int, m: int = HNSW_M, ef_construct: int = HNSW_EF_CONSTRUCT, quantization=INT8_CODES):
        """A new shard's config; the benchmark passes other m, ef_construct or codes (None: float only)."""
        threshold = _kilobytes(FULL_SCAN_VECTORS, dim)
        return EdgeConfig(
            vectors=EdgeVectorParams(size=dim, distance=Distance.Cosine),
            hnsw_config=HnswIndexConfig(m=m, ef_construct=ef_construct, full_scan_threshold=threshold),
            quantization_config=quantization,
            optimizers=EdgeOptimizersConfig(indexing_threshold=threshold),
        )

    def versions(self, exact: bool = True) -> dict:
        with self._lock:
            found = {}
            for name in os.listdir(self.folder):
                match = re.fullmatch(COLLECTION_PREFIX + r"(\d+)", name)
                shard = self._shard(int(match.group(1))) if match else None
                if shard is not None:
                    found[int(match.group(1))] = shard.count(CountRequest(exact=exact))
            return found

    def count(self, version: int) -> int:
        with self._lock:
            shard = self._shard(version)
            return shard.count(CountRequest(exact=True)) if shard else 0

    def existing(self, version: int, ids: list) -> set:
        with self._lock:
            shard = self._shard(version)
            if not ids or shard is None:
                return set()
            return {str(record.id) for record in shard.retrieve(ids, with_payload=False, with_vector=False)}

    def upsert(self, version: int, ids: list, vectors: np.ndarray, payloads: list) -> None:
        if not ids:
            return
        points = [
            Point(id=i, vector=vector.tolist(), payload=payload)
            for i, vector, payload in zip(ids, np.asarray(vectors, np.float32), payloads)
        ]
        with self._lock:
            self._shard(version, vectors.shape[1]).update(UpdateOperation.upsert_points(points))
            self._ef.forget(version)

    def search(self, version: int, vector: np.ndarray, limit: int) -> list:
        with self._lock:
            shard = self._shard(version)
            if shard is None:
                return []
            found = shard.query(
                QueryRequest(
                    query=Query.Nearest(np.asarray(vector, np.float32).tolist()),
                    limit=limit,
                    with_payload=True,
                    params=search_params(limit, self._ef(version, limit)),
                )
            )
        return [Hit(str(p.id), float(p.score), p.payload) for p in found]

    def get(self, version: int, ids: list) -> dict:
        with self._lock:
            shard = self._shard(version)
            if not ids or shard is None:
                return {}
            records = shard.retrieve(ids, with_payload=True, with_vector=False)
        return {str(record.id): record.payload for record in records}

    def delete(self, version: int, ids: list) -> None:
        with self._lock:
            shard = self._shard(version)
            if ids and shard is not None:
                shard.update(UpdateOperation.delete_points(ids))
                self._ef.forget(version)

    def scroll(self, version: int, offset: str = None, limit: int = 100, with_vectors: bool = False) -> tuple:
        with self._lock:
            shard = self._shard(version)
            if shard is None:
                return [], None
            records, next_offset = shard.scroll(
                ScrollRequest(offset=offset, limit=limit, with_payload=True, with_vector=with_vectors)
            )
        return [_entry(record, with_vectors) for record in records], (
            str(next_offset) if next_offset is not None else None
        )

    def newest(self, version: int, before: int = None, limit: int = 100) -> list:
        """(id, payload) of up to `limit` points, newest first, added at or before `before` (ORDER_FIELD)."""
        with self._lock:
            shard = self._shard(version)
            if shard is None:
                return []
            records, _ = shard.scroll(
                ScrollRequest(
                    limit=limit, with_payload=True, order_by=OrderBy(ORDER_FIELD, Direction.Desc, start_from=before)
                )
            )
        return [(str(record.id), record.payload) for record in records]

    def optimize(self, version: int) -> bool:
        """Builds the HNSW graph and int8 codes of segments past FULL_SCAN_VECTORS; True when it did any work. Blocks
        every other call of this process while it runs (tens of seconds at 100,000 images)."""
        with self._lock:
            shard = self._shard(version)
            return bool(shard and shard.optimize())

    def unindexed(self, version: int) -> int:
        """Points not covered by an HNSW graph (searched by scanning)."""
        with self._lock:
            shard = self._shard(version)
            if shard is None:
                return 0
            info = shard.info()
            return info.points_count - info.indexed_vectors_count


def _entry(record, with_vectors):
    if not with_vectors:
        return str(record.id), record.payload
    vector = record.vector[""] if isinstance(record.vector, dict) else record.vector
    return str(record.id), record.payload, np.asarray(vector, np.float32)
