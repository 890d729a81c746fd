"""Wires captioning.search to the model this server serves: the index, the searchers and the served model.

The model is called in process through the server's Predictor (batching included), pinned to one version per
request, so an image is embedded and scored by the same version.
"""

import threading

import grpc
import numpy as np

from captioning.inference import tensors, zero_shot
from captioning.inference.models import InvalidInputError, MissingSignatureError
from captioning.search.describe import describe
from captioning.search.fetch import FetchOptions, fetch_image
from captioning.search.index import ImageIndex
from captioning.search.indexing import Indexer
from captioning.search.models import SearchModel
from captioning.search.retrieval import Searcher
from serving.status import ServingError


class ServedModel:
    """captioning.inference.models' `run(signature, inputs)` on one version of a model this server has loaded."""

    def __init__(self, registry, predictor, servable):
        self._registry, self._predictor, self._servable = registry, predictor, servable

    def signature_names(self):
        return set(self._servable.signatures)

    def run(self, name, inputs):
        arrays = {key: tensors.string_array(value) if isinstance(value, list) else np.asarray(value)
                  for key, value in inputs.items()}
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
    def __init__(self, registry, predictor, model_name, index_dir, qdrant_url=None,
                 fetch_options=FetchOptions(), stage2="auto"):
        self._registry, self._predictor, self._model_name = registry, predictor, model_name
        self.index = ImageIndex(index_dir, qdrant_url)
        self.fetch_options = fetch_options
        self._stage2 = stage2
        self._searchers = {}  # version -> Searcher, which keeps its stage-2 measurements
        self._lock = threading.Lock()
        self.model().warm_up()  # before the port opens, so the first users do not wait for it

    def close(self):
        self.index.close()

    def model(self) -> SearchModel:
        servable = self._registry.get(self._model_name)
        return SearchModel(ServedModel(self._registry, self._predictor, servable), servable.version)

    def search(self, text, k, candidates, rank_by):
        model = self.model()
        with self._lock:
            searcher = self._searchers.get(model.version)
            if searcher is None:
                searcher = self._searchers[model.version] = Searcher(self.index, model, self._stage2)
        return searcher.search(text, k=k, candidates=candidates, rank_by=rank_by)

    def add(self, source, data):
        image_id, added = Indexer(self.index, self.model()).add_bytes(source, data)
        return {"id": image_id, "added": added, "source": source}

    def fetch(self, url):
        return fetch_image(url, self.fetch_options)

    def stored_image(self, image_id):
        """(bytes, payload) of an indexed image; KeyError when the index does not hold it."""
        payload = self.index.get(self.model().version, [image_id]).get(image_id)
        if payload is None:
            raise KeyError(image_id)
        return self.index.store.image(payload["sha256"]), payload

    def list(self, offset, limit):
        return self.index.scroll(self.model().version, offset, limit)

    def gallery(self, before, limit):
        """(a page of (id, payload) newest first, the next page's `before` or None, the collection's size)."""
        version = self.model().version
        page, next_before = self.index.newest(version, before, limit)
        return page, next_before, self.index.count(version)

    def count(self):
        version = self.model().version
        return {"count": self.index.count(version), "model_version": version}

    def delete(self, image_id):
        return bool(self.index.delete(self.model().version, [image_id]))

    def reindex(self):
        """Embeds the images of the newest other version that has any with the served version; None if none."""
        model = self.model()
        old = {v: n for v, n in self.index.versions().items() if v != model.version and n}
        if not old:
            return None
        result = Indexer(self.index, model).reindex(max(old), progress=False)
        return {"from_version": max(old), "model_version": model.version, "added": len(result.added),
                "errors": result.errors}

    def describe(self, data, labels, template, beam_size):
        return describe(self.model(), data, zero_shot.read_labels(labels) if labels else [], template, beam_size)

    def score(self, data, texts):
        outputs = self.model().runner.run("serving_default", {"image_bytes": [data] * len(texts), "text": texts})
        return [{"text": text, "scores": {name: values[n].item() for name, values in outputs.items()}}
                for n, text in enumerate(texts)]
