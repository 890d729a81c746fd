"""What both index engines share: the IndexEngine protocol, collection names, hits, errors, the gallery's order
field.

The two engines, `edge_engine.EdgeEngine` (embedded, a folder) and `server_engine.ServerEngine` (a Qdrant server
or cluster), are IndexEngines: `index.ImageIndex` calls nothing else of them (tests/search/test_engines.py holds
both to the protocol).
"""

import dataclasses
import time
from typing import Protocol, runtime_checkable

import numpy as np

from captioning.util.errors import Conflict, Unavailable

COLLECTION_PREFIX = "images_v"
# Payload field ordering the gallery: when the point was added, in UTC microseconds, unique within an index (each
# image of a batch gets its own), so pages newest first split exactly at a value. Microseconds, not nanoseconds:
# Qdrant compares order values as float64, exact only below 2**53.
ORDER_FIELD = "added_us"

# How both engines build and search a collection, chosen by scripts/benchmark_index.py (docs/benchmarks.md,
# "Index levers"): on float vectors a search ef of one per 400 images (2,500 at 1,000,000) cost as much as a scan;
# on int8 codes, the candidates rescored in float, ef 128 keeps recall@10 at 1.000 at 100,000 and at 1,000,000 for
# queries near stored images. Caption queries lie further from the images: at 1,000,000 ef 128 found 0.82 of the
# exact top 16's images, ef 1,024 0.985 in 2.0 ms (the exact scan: 47 ms). So ef grows with the collection past
# 128,000 images, one per 1,000, up to 1,024.
HNSW_M, HNSW_EF_CONSTRUCT = 16, 128
SEARCH_EF, MAX_SEARCH_EF, IMAGES_PER_EF = 128, 1_024, 1_000
EF_STALE_SECONDS = 60.0  # another process may write to a server's collection: its size is recounted this often
INT8_QUANTILE = 0.99  # int8 codes span this quantile of the values: a few outliers do not stretch the scale
OVERSAMPLING = 2.0  # int8 candidates per result, rescored with the float vectors, so codes cost no recall


def search_ef(points: int, limit: int) -> int:
    """Candidates the graph walk keeps for a collection of `points`: at least the query's limit."""
    return max(limit, min(MAX_SEARCH_EF, max(SEARCH_EF, points // IMAGES_PER_EF)))


class SearchEf:
    """search_ef for each version's collection, its size counted once and kept: recounted after this process
    writes to it (`forget`) and at least every EF_STALE_SECONDS. `versions` is an engine's
    IndexEngine.versions; the segments' own totals are close enough to choose ef."""

    def __init__(self, versions):
        self._versions, self._known = versions, {}

    def __call__(self, version: int, limit: int) -> int:
        known = self._known.get(version)
        if known is None or time.monotonic() - known[1] > EF_STALE_SECONDS:
            known = self._known[version] = (self._versions(exact=False).get(version, 0), time.monotonic())
        return search_ef(known[0], limit)

    def forget(self, version: int) -> None:
        self._known.pop(version, None)


class ModelVersionError(Conflict):
    """The index holds embeddings of another model version than the one asked to search or add with."""


class IndexBusyError(Unavailable):
    """The embedded index allows one process per folder, and another one (a server?) has it open."""


@dataclasses.dataclass
class Hit:
    id: str
    score: float  # cosine similarity of the image and query embeddings: the `contrastive` score
    payload: dict


@runtime_checkable
class IndexEngine(Protocol):
    """One vector collection per model version (collection_name), points keyed by image id."""

    def versions(self, exact: bool = True) -> dict:
        """{version: point count} of every collection. An exact count reads every segment (80 ms at 1,000,000
        points); `exact=False` takes the segments' own totals, which may still hold deleted points."""

    def count(self, version: int) -> int:
        """Points of the version's collection (0 when it has none)."""

    def existing(self, version: int, ids: list) -> set:
        """The ids among `ids` that the collection holds."""

    def upsert(self, version: int, ids: list, vectors: np.ndarray, payloads: list) -> None:
        """Writes the points as one update, creating the collection for the vectors' size when needed."""

    def search(self, version: int, vector: np.ndarray, limit: int) -> list:
        """The `limit` nearest points by cosine, as Hits, best first."""

    def get(self, version: int, ids: list) -> dict:
        """{id: payload} of the ids the collection holds."""

    def delete(self, version: int, ids: list) -> None:
        """Removes the points (ids it does not hold are ignored)."""

    def scroll(self, version: int, offset: str = None, limit: int = 100, with_vectors: bool = False) -> tuple:
        """(entries in id order from `offset`: (id, payload) or with_vectors (id, payload, vector), next offset or
        None)."""

    def newest(self, version: int, before: int = None, limit: int = 100) -> list:
        """(id, payload) of up to `limit` points, newest first, added at or before `before` (ORDER_FIELD)."""

    def optimize(self, version: int) -> bool:
        """Builds the search graph where the engine leaves that to the caller; True when it did any work."""

    def unindexed(self, version: int) -> int:
        """Points not covered by a search graph (searched by scanning)."""

    def close(self) -> None:
        """Flushes and releases the collection's files or connection."""


def collection_name(version: int) -> str:
    return f"{COLLECTION_PREFIX}{int(version)}"
