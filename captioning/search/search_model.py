"""The model-facing calls of search and of the server's web API, in one place: no other module of search or of
serving/web calls a signature.

The runner is a captioning.inference.runners.ModelRunner: a LocalModel, or the server's in-process model
(serving/web/search_service.py). Embeddings and features of one model version mean nothing to another, so a
SearchModel is one version and the index keeps its vectors per version.
"""

import os

import numpy as np

from captioning.export import layout
from captioning.inference import batch, ranking, zero_shot
from captioning.inference.captions import generate_with_signature
from captioning.inference.rows import MAX_ROWS_PER_CALL, run_in_batches
from captioning.inference.runners import LocalModel, MissingSignatureError, ModelRunner
from captioning.util.errors import InvalidInput


class SearchModel:
    def __init__(self, runner: ModelRunner, version: int):
        self._runner = runner
        self.version = int(version)
        self.path = runner.path
        self._signatures = None

    def has(self, signature: str) -> bool:
        """Whether the model was exported with `signature`."""
        if self._signatures is None:
            self._signatures = set(self._runner.signature_names())
        return signature in self._signatures

    def stored_ranking(self):
        """The ranking.json evaluation stored with the model (captioning.inference.ranking), or None."""
        return ranking.read_ranking(self._runner.extra_file(layout.RANKING_FILE))

    def alpha(self) -> float:
        """The alpha `debiased` uses: the stored one, else 1 (every caller ranks with this one alpha)."""
        return ranking.stored_alpha(self.stored_ranking())

    def require_contrastive_head(self) -> None:
        """Indexing and search need the contrastive head's embeddings: MissingSignatureError, naming the fix, for a
        model trained without it."""
        if not (self.has("embed_image") and self.has("embed_text")):
            raise MissingSignatureError(
                f"model version {self.version} has no contrastive head (no embed_image and embed_text signatures: "
                "it was trained with --contrastive_weight 0); search needs one: train with --contrastive_weight "
                "above 0"
            )

    def warm_up(self) -> None:
        """Calls every signature search uses once: a signature's first calls are slow (graph optimisation), and
        many at once on a cold model can take seconds each."""
        self.require_contrastive_head()
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (128, 64, 32)).save(buffer, "PNG")
        image = [buffer.getvalue()]
        self.embed_images(image)
        self.embed_text("warm up")
        self.score_images(image, "warm up")
        if self.has("encode_image") and self.has("score_features"):
            self.score_features(self.encode_images(image), "warm up")

    def embed_images(self, image_bytes: list) -> np.ndarray:
        """[N] encoded images -> float32 [N, D], unit length (the `embed_image` signature)."""
        return run_in_batches(self._runner, "embed_image", {"image_bytes": list(image_bytes)})["embedding"]

    def embed_text(self, text: str) -> np.ndarray:
        """One text -> float32 [D] (the `embed_text` signature)."""
        return self._runner.run("embed_text", {"text": [text]})["embedding"][0]

    def encode_images(self, image_bytes: list) -> np.ndarray:
        """[N] encoded images -> the caption decoder's image features [N, G, D] (`encode_image`)."""
        return run_in_batches(self._runner, "encode_image", {"image_bytes": list(image_bytes)})["image_features"]

    def score_matrix(self, image_bytes: list, texts: list) -> dict:
        """Every image against every text with `score_matrix` (each image decoded and encoded) -> {score: [N, M]}."""
        return batch.score_matrix(self._runner, list(image_bytes), list(texts))

    def score_images(self, image_bytes: list, text: str) -> dict:
        """Every image against one text -> {score: [N]}."""
        return {name: values[:, 0] for name, values in self.score_matrix(image_bytes, [text]).items()}

    def score_features(self, features: np.ndarray, text: str) -> dict:
        """Cached features [N, G, D] against one text with `score_features` -> {score: [N]}."""
        rows = {"image_features": features, "text": [text] * len(features)}
        return run_in_batches(self._runner, "score_features", rows, batch_size=MAX_ROWS_PER_CALL)

    def score_pairs(self, image_bytes: list, texts: list) -> dict:
        """Row-aligned (image, text) pairs -> every score of each pair (`serving_default`), {score: [B]}."""
        return run_in_batches(self._runner, "serving_default", {"image_bytes": list(image_bytes), "text": list(texts)})

    def rank_labels(self, image_bytes: bytes, labels: list, template: str, rank_by: str, alpha: float) -> list:
        """One image's labels best first, as `get_similarity_score.py --labels` ranks them (inference.zero_shot)."""
        return zero_shot.rank_labels(self._runner, [image_bytes], list(labels), template, rank_by, alpha)[0]

    def captions(self, image_bytes: bytes, beam_size: int) -> list:
        """One image's generated captions best first, as (caption, log_likelihood) (`generate_caption`)."""
        generated = generate_with_signature(self._runner, [image_bytes], beam_size=beam_size)
        return list(zip(generated["caption"][0], generated["log_likelihood"][0]))


def open_local(model_dir: str) -> SearchModel:
    """The newest SavedModel under `model_dir` (or that version directory), in this process."""
    model = LocalModel(model_dir)
    name = os.path.basename(os.path.normpath(model.path))
    if not name.isdigit():
        raise InvalidInput(f"{model.path}: a model version directory must be named by its integer version")
    return SearchModel(model, int(name))
