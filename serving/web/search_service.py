"""Wires captioning.search to the model this server serves: the index, the searchers and the served model.

The model is called in process through the server's Predictor (batching included), pinned to one version per
request, so an image is embedded and scored by the same version. Adds, deletes and reads of one image hold that
image's lock (captioning.search.locks), so every listed entry's file exists. URL fetches run on their own small
pool: a flood of slow URLs fills that pool and gets 503s, while search, predict and the page go on.
"""

import concurrent.futures
import os
import threading
import uuid

import grpc
import numpy as np

from captioning.export.layout import EXTRA_FILES_DIR
from captioning.inference import tensors, zero_shot
from captioning.inference.runners import InvalidInputError, MissingSignatureError
from captioning.search.describe import describe
from captioning.search.fetch import FetchOptions, fetch_image
from captioning.search.images import ImageLimits
from captioning.search.index import ImageIndex
from captioning.search.indexing import Indexer
from captioning.search.locks import IdLocks
from captioning.search.retrieval import POOR_MATCH_MEAN_LOG_PROB, QueryError, Searcher
from captioning.search.search_model import SearchModel
from captioning.search.thumbnails import THUMBNAIL_SIZE
from captioning.util.errors import Unavailable
from serving.limits import SearchLimits
from serving.status import ServingError


class BusyError(Unavailable):
    """Every URL-fetch slot is taken: answered 503, try again later."""


class ServedModel:
    """A captioning.inference.runners.ModelRunner on one version of a model this server has loaded, called in
    process through the Predictor (its validation, limits and batching)."""

    def __init__(self, predictor, servable):
        self._predictor, self._servable = predictor, servable
        self.path = servable.path

    def signature_names(self) -> set:
        return set(self._servable.signatures)

    def output_names(self, name: str) -> set:
        if name not in self._servable.signatures:
            raise MissingSignatureError(f"the served model has no {name!r} signature")
        return set(self._servable.signatures[name].outputs)

    def extra_file(self, name: str) -> str:
        return os.path.join(self._servable.path, EXTRA_FILES_DIR, name)

    def run(self, name: str, inputs: dict) -> dict:
        arrays = {
            key: tensors.string_array(value) if isinstance(value, list) else np.asarray(value)
            for key, value in inputs.items()
        }
        try:
            _, outputs = self._predictor.predict(self._servable, name, arrays)
        except ServingError as error:
            if error.code == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidInputError(error.message.strip().splitlines()[0]) from None
            if name not in self._servable.signatures:
                raise MissingSignatureError(f"the served model has no {name!r} signature") from None
            raise
        return outputs


class SearchService:
    def __init__(
        self,
        registry,
        predictor,
        model_name,
        index_dir,
        qdrant_url=None,
        fetch_options=FetchOptions(),
        stage2="auto",
        limits=SearchLimits(),
        image_limits=ImageLimits(),
        poor_match_mean_log_prob=POOR_MATCH_MEAN_LOG_PROB,
    ):
        self._registry, self._predictor, self._model_name = registry, predictor, model_name
        self.index = ImageIndex(index_dir, qdrant_url)
        self.fetch_options = fetch_options
        self.limits = limits
        self.image_limits = image_limits
        self.poor_match_mean_log_prob = poor_match_mean_log_prob
        self._stage2 = stage2
        self._searchers = {}  # version -> Searcher, which keeps its stage-2 measurements
        self._lock = threading.Lock()
        self._image_locks = IdLocks()
        self._fetch_slots = threading.BoundedSemaphore(self.limits.max_concurrent_fetches)
        self._fetches = concurrent.futures.ThreadPoolExecutor(
            self.limits.max_concurrent_fetches, thread_name_prefix="fetch"
        )
        self.model().warm_up()  # before the port opens, so the first users do not wait for it

    def close(self):
        self._fetches.shutdown(wait=False, cancel_futures=True)
        self.index.close()

    def model(self) -> SearchModel:
        servable = self._registry.get(self._model_name)
        return SearchModel(ServedModel(self._predictor, servable), servable.version)

    def _indexer(self, model):
        return Indexer(self.index, model, locks=self._image_locks, image_limits=self.image_limits)

    def search(self, text, k, candidates, rank_by):
        _at_most(k, self.limits.max_results, "k", "--max_search_results")
        _at_most(candidates, self.limits.max_candidates, "candidates", "--max_search_candidates")
        model = self.model()
        with self._lock:
            searcher = self._searchers.get(model.version)
            if searcher is None:
                searcher = self._searchers[model.version] = Searcher(self.index, model, self._stage2)
        return searcher.search(text, k=k, candidates=candidates, rank_by=rank_by)

    def add(self, source, data):
        image_id, added = self._indexer(self.model()).add_bytes(source, data)
        return {"id": image_id, "added": added, "source": source}

    def fetch(self, url) -> concurrent.futures.Future:
        """The fetch of `url` on the fetch pool, as a future of its bytes; BusyError when every slot is taken."""
        if not self._fetch_slots.acquire(blocking=False):
            raise BusyError(
                f"{self.limits.max_concurrent_fetches} URL fetches are already running; try again "
                "shortly (--max_concurrent_fetches)"
            )
        try:
            future = self._fetches.submit(fetch_image, url, self.fetch_options)
        except BaseException:
            self._fetch_slots.release()
            raise
        future.add_done_callback(lambda _: self._fetch_slots.release())
        return future

    def stored_image(self, image_id):
        """(bytes, payload) of an indexed image; KeyError when the index does not hold it."""
        version = self.model().version
        with self._image_locks.hold([image_id]):
            payload = self.index.get(version, [image_id]).get(image_id)
            if payload is None:
                raise KeyError(image_id)
            try:
                return self.index.store.image(payload["sha256"]), payload
            except FileNotFoundError:  # only another process sharing a Qdrant server could have removed it
                raise KeyError(image_id) from None

    def thumbnail(self, image_id):
        """(thumbnail bytes, the image's content hash) of an indexed image; KeyError when the index lacks it."""
        version = self.model().version
        with self._image_locks.hold([image_id]):  # a delete removes the thumbnail under the same lock
            payload = self.index.get(version, [image_id]).get(image_id)
            if payload is None:
                raise KeyError(image_id)
            try:
                return self.index.store.thumbnail(payload["sha256"], THUMBNAIL_SIZE), payload["sha256"]
            except FileNotFoundError:
                raise KeyError(image_id) from None

    def similar(self, image_id, k):
        """The `k` images whose embeddings are nearest this indexed image's stored one (itself left out), best
        first: dicts of id, source, similarity (cosine) and payload; KeyError when the index lacks it."""
        _at_most(k, self.limits.max_results, "k", "--max_search_results")
        version = self._checked_version()
        vector = self.index.vector(version, image_id)
        if vector is None:
            raise KeyError(image_id)
        hits = self.index.search(version, vector, k + 1)
        return [
            {"id": hit.id, "source": hit.payload["source"], "similarity": hit.score, "payload": hit.payload}
            for hit in hits
            if hit.id != image_id
        ][:k]

    def page_limits(self):
        """The limits a user can run into, for the page to check and explain before it sends anything."""
        return {
            "max_upload_bytes": self.limits.max_upload_bytes,
            "max_image_pixels": self.image_limits.max_pixels,
            "max_labels": self.limits.max_labels,
            "max_results": self.limits.max_results,
            "fetches_private_urls": self.fetch_options.allow_private,
            "poor_match_mean_log_prob": self.poor_match_mean_log_prob,
        }

    def list(self, offset, limit):
        if offset is not None:
            try:
                offset = str(uuid.UUID(offset))
            except ValueError:
                raise QueryError(
                    f"offset {offset!r} is not an image id: pass the next_offset of the previous page"
                ) from None
        version = self._checked_version()
        return self.index.scroll(version, offset, limit)

    def gallery(self, before, limit):
        """(a page of (id, payload) newest first, the next page's `before` or None, the collection's size)."""
        version = self.model().version
        page, next_before = self.index.newest(version, before, limit)
        return page, next_before, self.index.count(version)

    def count(self):
        version = self._checked_version()
        return {"count": self.index.count(version), "model_version": version}

    def delete(self, image_id):
        version = self._checked_version()
        with self._image_locks.hold([image_id]):
            return bool(self.index.delete(version, [image_id]))

    def _checked_version(self) -> int:
        """The served version; ModelVersionError (409) when the index holds only another version's images."""
        version = self.model().version
        self.index.check_version(version)
        return version

    def reindex(self):
        """Embeds the images of the newest other version that has any with the served version; None if none."""
        model = self.model()
        old = {v: n for v, n in self.index.versions().items() if v != model.version and n}
        if not old:
            return None
        result = self._indexer(model).reindex(max(old), progress=False)
        return {
            "from_version": max(old),
            "model_version": model.version,
            "added": len(result.added),
            "errors": result.errors,
        }

    def describe(self, data, labels, template, beam_size):
        """Labels ranked as `get_similarity_score.py --labels` ranks them (--rank_by auto with the model's stored
        alpha), and the generated captions."""
        self.check_counts(labels=len(labels))
        return describe(self.model(), data, zero_shot.read_labels(labels) if labels else [], template, beam_size)

    def check_counts(self, labels=0, texts=0):
        """QueryError when a request names more labels or texts than the limits allow."""
        _at_most(labels, self.limits.max_labels, "labels", "--max_labels", count=True)
        _at_most(texts, self.limits.max_texts, "texts", "--max_texts", count=True)

    def score(self, data, texts):
        self.check_counts(texts=len(texts))
        outputs = self.model().score_pairs([data] * len(texts), texts)
        return [
            {"text": text, "scores": {name: values[n].item() for name, values in outputs.items()}}
            for n, text in enumerate(texts)
        ]


def _at_most(value, limit, name, flag, count=False):
    if value > limit:
        given = f"{value} {name}" if count else f"{name}={value}"
        raise QueryError(f"{given} is more than this server's limit of {limit} ({flag})")
