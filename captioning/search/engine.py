"""What both index engines share: collection names, hits, errors, the gallery's order field.

The two engines, `edge_engine.EdgeEngine` (embedded, a folder) and `server_engine.ServerEngine` (a Qdrant server
or cluster), offer the same calls to `index.ImageIndex`: versions, count, existing, upsert, search, get, delete,
scroll (id order, optionally with vectors), newest (gallery order), optimize and close.
"""

import dataclasses

COLLECTION_PREFIX = "images_v"
# Payload field ordering the gallery: when the point was added, in UTC microseconds, unique within an index (each
# image of a batch gets its own), so pages newest first split exactly at a value. Microseconds, not nanoseconds:
# Qdrant compares order values as float64, exact only below 2**53.
ORDER_FIELD = "added_us"


class ModelVersionError(RuntimeError):
    """The index holds embeddings of another model version than the one asked to search or add with."""


class IndexBusyError(RuntimeError):
    """The embedded index allows one process per folder, and another one (a server?) has it open."""


@dataclasses.dataclass
class Hit:
    id: str
    score: float  # cosine similarity of the image and query embeddings: the `contrastive` score
    payload: dict


def collection_name(version: int) -> str:
    return f"{COLLECTION_PREFIX}{int(version)}"
