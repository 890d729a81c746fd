"""The model-facing calls of search, in one place.

`runner` is anything with `run(signature, inputs) -> {output: numpy}` and `signature_names()`: a
captioning.inference.runners LocalModel, or the server's in-process model (serving/web/search_service.py). Embeddings
and features of one model version mean nothing to another, so a SearchModel is one version and the index keeps
its vectors per version.
"""

import os

import numpy as np

from captioning.inference import batch
from captioning.inference.runners import LocalModel, MissingSignatureError
from captioning.inference.rows import MAX_ROWS_PER_CALL, run_in_batches


class SearchModel:
    def __init__(self, runner, version: int):
        self.runner = runner
        self.version = int(version)
        self._signatures = None

    def has(self, signature: str) -> bool:
        """Whether the model was exported with `signature`."""
        if self._signatures is None:
            self._signatures = set(self.runner.signature_names())
        return signature in self._signatures

    def require_contrastive_head(self) -> None:
        """Indexing and search need the contrastive head's embeddings: MissingSignatureError, naming the fix, for a
        model trained without it."""
        if not (self.has("embed_image") and self.has("embed_text")):
            raise MissingSignatureError(
                f"model version {self.version} has no contrastive head (no embed_image and embed_text signatures: "
                "it was trained with --contrastive_weight 0); search needs one: train with --contrastive_weight "
                "above 0")

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
        return run_in_batches(self.runner, "embed_image", {"image_bytes": list(image_bytes)})["embedding"]

    def embed_text(self, text: str) -> np.ndarray:
        """One text -> float32 [D] (the `embed_text` signature)."""
        return self.runner.run("embed_text", {"text": [text]})["embedding"][0]

    def encode_images(self, image_bytes: list) -> np.ndarray:
        """[N] encoded images -> the caption decoder's image features [N, G, D] (`encode_image`)."""
        return run_in_batches(self.runner, "encode_image", {"image_bytes": list(image_bytes)})["image_features"]

    def score_images(self, image_bytes: list, text: str) -> dict:
        """Every image against one text with `score_matrix` (each image decoded and encoded) -> {score: [N]}."""
        matrix = batch.score_matrix(self.runner, list(image_bytes), [text])
        return {name: values[:, 0] for name, values in matrix.items()}

    def score_features(self, features: np.ndarray, text: str) -> dict:
        """Cached features [N, G, D] against one text with `score_features` -> {score: [N]}."""
        rows = {"image_features": features, "text": [text] * len(features)}
        return run_in_batches(self.runner, "score_features", rows, batch_size=MAX_ROWS_PER_CALL)


def open_local(model_dir: str) -> SearchModel:
    """The newest SavedModel under `model_dir` (or that version directory), in this process."""
    model = LocalModel(model_dir)
    name = os.path.basename(os.path.normpath(model.path))
    if not name.isdigit():
        raise ValueError(f"{model.path}: a model version directory must be named by its integer version")
    return SearchModel(model, int(name))

