"""Two-stage text -> image search.

Stage 1: the `candidates` (K) images whose `embed_image` vectors are nearest the text's `embed_text` vector
(cosine: the `contrastive` score), from the index. Stage 2: those K scored by caption log-likelihood, the model's
headline score, and the best `k` returned with both scores. Stage 2 either scores cached encoder features
(`score_features`) or decodes and encodes the K images again (`score_matrix`); with `stage2="auto"` it times both
on the first queries and keeps the faster.

For one text the prior log P(text) is the same for every image, so `debiased` (log_likelihood - alpha * prior)
ranks images exactly as log_likelihood does; it is offered for its values, comparable with text rankings, and
uses the model's stored alpha as every other ranking does (captioning.inference.ranking).
"""

import time

import numpy as np

from captioning.data.validation import caption_problem
from captioning.inference import ranking
from captioning.util.errors import InvalidInput

DEFAULT_CANDIDATES = 64
# Below this log-likelihood per token (mean_log_prob) of the best result, nothing in the collection describes the
# query well: the search page says so. On the default model (scripts/poor_match.py): a collected scene's caption
# -0.1 to -0.4, one of its objects named alone down to -2.3, texts from outside the model's world -5 and below.
POOR_MATCH_MEAN_LOG_PROB = -4.0
STAGE2_WAYS = ("auto", "features", "images")
RANK_BY = ("log_likelihood", "debiased")
_MEASURED_QUERIES = 2  # the first call of a signature pays for warm-up; the second is the measurement


class QueryError(InvalidInput):
    """A query that cannot be searched: no words, or k/candidates out of range."""


class Searcher:
    def __init__(self, index, model, stage2: str = "auto"):
        if stage2 not in STAGE2_WAYS:
            raise ValueError(f"stage2 must be one of {STAGE2_WAYS}")
        self.index, self.model, self.stage2, self.alpha = index, model, stage2, model.alpha()
        self.timings = {"features": [], "images": []}  # seconds of each stage-2 way, while measuring

    def search(
        self, text: str, k: int = 10, candidates: int = DEFAULT_CANDIDATES, rank_by: str = "log_likelihood"
    ) -> list:
        """The best `k` images for `text`, best first: dicts of id, source, contrastive, log_likelihood,
        mean_log_prob, pmi, score (the rank_by value) and payload."""
        if caption_problem(text):
            raise QueryError("the query has no words to search for")
        if k < 1 or candidates < 1:
            raise QueryError("k and candidates must be at least 1")
        if rank_by not in RANK_BY:
            raise QueryError(f"rank_by must be one of {', '.join(RANK_BY)}")
        self.index.check_version(self.model.version)
        hits = self.index.search(self.model.version, self.model.embed_text(text), max(candidates, k))
        if not hits:
            return []
        scores = self.rerank([hit.payload["sha256"] for hit in hits], text)
        chosen = ranking.ranking_scores(scores, rank_by, self.alpha)
        rows = [
            {
                "id": hit.id,
                "source": hit.payload["source"],
                "contrastive": hit.score,
                "log_likelihood": float(scores["log_likelihood"][n]),
                "mean_log_prob": float(scores["mean_log_prob"][n]),
                "pmi": float(scores["pmi"][n]),
                "score": float(chosen[n]),
                "payload": hit.payload,
            }
            for n, hit in enumerate(hits)
            if not np.isnan(scores["log_likelihood"][n])
        ]  # NaN: deleted since stage 1 found it
        # Stage 1's order breaks ties: a stable sort keeps it.
        return sorted(rows, key=lambda row: -row["score"])[:k]

    def rerank(self, digests: list, text: str) -> dict:
        """{log_likelihood, mean_log_prob, pmi: [K]} of the stored images against `text`; NaN for an image deleted
        meanwhile."""
        way = self._way(digests)
        if way != "measure":
            return self._stage2(way, digests, text)[0]
        results = {name: self._stage2(name, digests, text) for name in ("features", "images")}
        for name, (_, seconds) in results.items():
            self.timings[name].append(seconds)
        return results["features"][0]

    def _way(self, digests) -> str:
        if self.stage2 != "auto":
            return self.stage2
        if self.index.store.features(self.model.version, digests[:1]) is None or not self.model.has("score_features"):
            return "images"
        if min(map(len, self.timings.values())) < _MEASURED_QUERIES:
            return "measure"
        return min(self.timings, key=lambda name: self.timings[name][-1])

    def _stage2(self, way, digests, text) -> tuple:
        """(scores, seconds) of one stage-2 way."""
        started = time.perf_counter()
        features = self.index.store.features(self.model.version, digests) if way == "features" else None
        if features is not None:
            scores = self.model.score_features(features, text)
        else:  # re-encode the images (also when some features are missing)
            scores = self._score_stored_images(digests, text)
        scores = {name: np.asarray(scores[name], np.float32) for name in ("log_likelihood", "mean_log_prob", "pmi")}
        return scores, time.perf_counter() - started

    def _score_stored_images(self, digests, text) -> dict:
        """score_images on the stored images, NaN for those deleted since stage 1 (a concurrent delete)."""
        images = {}
        for n, digest in enumerate(digests):
            try:
                images[n] = self.index.store.image(digest)
            except FileNotFoundError:
                pass
        scores = {
            name: np.full(len(digests), np.nan, np.float32) for name in ("log_likelihood", "mean_log_prob", "pmi")
        }
        if images:
            found = self.model.score_images(list(images.values()), text)
            for name, values in scores.items():
                values[list(images)] = found[name]
        return scores

    def stage2_choice(self) -> dict:
        """Which stage-2 way runs now and what was measured (seconds per query), for logs and benchmarks."""
        measured = {name: values[-1] for name, values in self.timings.items() if values}
        chosen = (
            self.stage2
            if self.stage2 != "auto"
            else (min(measured, key=measured.get) if len(measured) == 2 else "not measured yet")
        )
        return {"stage2": chosen, "seconds": measured}
