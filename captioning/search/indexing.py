"""Adding images to the index in batches: read, check, de-duplicate by content, embed, store, upsert.

A batch's images and features are written to the store before its points, and its points are one update, so a
`kill -9` loses at most the batch in flight and never leaves an entry without its image; running the same `add`
again skips what is already in (same content, same id) and continues. Each batch holds its images' locks
(captioning.search.locks) from the look-up to the upsert, so concurrent adds and deletes of one image take turns.
"""

import dataclasses
import time
from datetime import UTC, datetime

import numpy as np

from captioning.inference.runners import InvalidInputError
from captioning.search.fetch import FetchError
from captioning.search.images import ImageError, ImageLimits, image_size
from captioning.search.index import point_id
from captioning.search.locks import IdLocks
from captioning.search.store import content_hash
from captioning.util.progress_bars import progress_bar

BATCH_SIZE = 32


@dataclasses.dataclass
class AddResult:
    added: list = dataclasses.field(default_factory=list)  # ids of images new to the index
    duplicates: list = dataclasses.field(default_factory=list)  # ids of images it already held
    errors: list = dataclasses.field(default_factory=list)  # (source, message) of images not added
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        done = len(self.added) + len(self.duplicates)
        return done / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"indexed {len(self.added)} new images ({len(self.duplicates)} already in, {len(self.errors)} "
            f"with errors) in {self.seconds:.1f} s: {self.images_per_second:.1f} images/s"
        )


@dataclasses.dataclass
class _Image:
    source: str
    data: bytes
    width: int
    height: int
    digest: str

    @property
    def id(self):
        return point_id(self.digest)


class Indexer:
    """Adds images to `index` with `model` (a captioning.search.search_model.SearchModel)."""

    def __init__(
        self,
        index,
        model,
        batch_size: int = BATCH_SIZE,
        cache_features: bool = None,
        locks: IdLocks = None,
        image_limits: ImageLimits = ImageLimits(),
    ):
        self.index, self.model, self.batch_size = index, model, batch_size
        # Share `locks` with whatever else adds or deletes in this index concurrently (a server's requests).
        self.locks = locks or IdLocks()
        self.image_limits = image_limits
        # Cached features let stage 2 skip re-encoding; only models with encode_image + score_features have them.
        self.cache_features = (
            (model.has("encode_image") and model.has("score_features")) if cache_features is None else cache_features
        )

    def add(self, items, progress: bool = True, _reindexing: bool = False) -> AddResult:
        """Indexes [(source, loader)] (captioning.search.sources); one bad image is reported, not fatal."""
        if not _reindexing:
            self.index.check_version(self.model.version)
        items = list(items)
        result = AddResult()
        started = time.monotonic()
        with progress_bar(total=len(items), unit="image", desc="indexing", disable=not progress) as bar:
            for start in range(0, len(items), self.batch_size):
                batch = items[start : start + self.batch_size]
                self._add_batch([self._load(source, loader, result) for source, loader in batch], result)
                bar.update(len(batch))
        result.seconds = time.monotonic() - started
        return result

    def reindex(self, from_version: int, progress: bool = True) -> AddResult:
        """Embeds every image of `from_version`'s collection with this model into its own collection."""
        store = self.index.store
        items = [
            (payload["source"], lambda digest=payload["sha256"]: store.image(digest))
            for _, payload in self.index.all_entries(from_version)
        ]
        return self.add(items, progress, _reindexing=True)

    def add_bytes(self, source: str, data: bytes) -> tuple:
        """(id, True if new) for one image's bytes; ImageError when they are not an image."""
        self.index.check_version(self.model.version)
        result = AddResult()
        self._add_batch([self._checked(source, data)], result)
        if result.errors:
            raise ImageError(result.errors[0][1])
        return (result.added + result.duplicates)[0], bool(result.added)

    def _checked(self, source, data) -> _Image:
        width, height = image_size(data, self.image_limits)
        return _Image(source, data, width, height, content_hash(data))

    def _load(self, source, loader, result):
        try:
            return self._checked(source, loader())
        except (OSError, FetchError, ImageError) as error:
            message = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            result.errors.append((source, message))
            return None

    def _add_batch(self, images, result) -> None:
        unique = {}
        for image in images:
            if image is None:
                continue
            if image.id in unique:  # a second copy in the batch: already in once the first is added
                result.duplicates.append(image.id)
            else:
                unique[image.id] = image
        # Held from the look-up to the upsert: a concurrent add of the same image waits and then finds it in, and
        # a concurrent delete cannot remove the file between this add's write and its upsert.
        with self.locks.hold(list(unique)):
            self._add_unique(unique, result)

    def _add_unique(self, unique, result) -> None:
        present = self.index.existing(self.model.version, list(unique))
        result.duplicates += [i for i in unique if i in present]
        new = [image for i, image in unique.items() if i not in present]
        new, vectors = self._embedded(new, result)
        if not new:
            return
        data = [image.data for image in new]
        features = self.model.encode_images(data) if self.cache_features else None
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for n, image in enumerate(new):
            self.index.store.put_image(image.digest, image.data)
            if features is not None:
                self.index.store.put_features(self.model.version, image.digest, features[n])
        self.index.upsert(
            self.model.version,
            [image.id for image in new],
            vectors,
            [
                {
                    "source": image.source,
                    "sha256": image.digest,
                    "bytes": len(image.data),
                    "width": image.width,
                    "height": image.height,
                    "added": now,
                    "model_version": self.model.version,
                }
                for image in new
            ],
        )
        result.added += [image.id for image in new]

    def _embedded(self, images, result) -> tuple:
        """(the images the model decodes, their embeddings); one that PIL reads but the graph rejects is reported."""
        if not images:
            return [], None
        try:
            return images, self.model.embed_images([image.data for image in images])
        except InvalidInputError:
            kept, vectors = [], []
            for image in images:
                try:
                    vectors.append(self.model.embed_images([image.data])[0])
                    kept.append(image)
                except InvalidInputError as error:
                    result.errors.append((image.source, f"the model cannot decode it: {error}"))
            return kept, np.array(vectors) if vectors else None
