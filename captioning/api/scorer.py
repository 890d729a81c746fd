"""One object for an exported model, local or on a gRPC server: every image against every text, captions,
zero-shot labels and embeddings.

    from captioning import Scorer

    scorer = Scorer("checkpoints/export")             # or Scorer("localhost:8500"), a served model
    scores = scorer(images=["a.png", "b.png"], texts=["a red star", "a blue circle"])   # [2, 2] log-likelihoods
    scorer.caption(["a.png"])                          # ["a red star left of a blue circle"]
"""

import os
import re

import numpy as np

from captioning.api.images import ImageInputError, images_bytes
from captioning.data.validation import caption_problem
from captioning.inference import batch, ranking, runners, zero_shot
from captioning.inference.captions import generate_with_signature
from captioning.inference.rows import run_in_batches
from captioning.util.errors import InvalidInput

SCORES = ("log_likelihood", "mean_log_prob", "pmi", "contrastive")  # what the score_matrix signature gives
_SERVER = re.compile(r"^[\w.-]+:\d+$")  # HOST:PORT


class ScorerInputError(InvalidInput):
    """A bad argument to a Scorer: the message names it."""


def _texts(texts) -> list:
    texts = [texts] if isinstance(texts, str) else list(texts)  # one text, not its characters
    if not texts:
        raise ScorerInputError("no texts: give at least one")
    for text in texts:
        if not isinstance(text, str):
            raise ScorerInputError(f"texts must be strings, got {type(text).__name__}")
        if caption_problem(text):
            raise ScorerInputError(f"text {text!r} has no words to score")
    return texts


def _images(images) -> list:
    try:
        return images_bytes(images)
    except ImageInputError as error:
        raise ScorerInputError(str(error)) from None


class Scorer:
    """An exported model: `model` is its export folder (the newest version in it, or one version folder) or the
    HOST:PORT of a TF Serving-compatible gRPC server (then `model_name` and `version` choose the served model).

    Images may be paths, encoded bytes (JPEG, PNG, BMP, GIF), PIL images or numpy arrays (H x W [x 3|4], uint8 or
    floats in [0, 1]), one or a list. Texts are strings, one or a list. Bad input raises ScorerInputError.
    """

    def __init__(self, model: str, model_name: str = "captioner", version: int = None):
        model = os.fspath(model)
        if os.path.isdir(model):
            self.model = runners.open_model(model_dir=model)
        elif _SERVER.match(model):
            self.model = runners.open_model(server=model, model_name=model_name, version=version)
        else:
            raise ScorerInputError(
                f"{model}: no such export folder (python train.py writes checkpoints/export), "
                "nor a HOST:PORT of a gRPC server"
            )

    def __repr__(self) -> str:
        return f"Scorer({self.model.path!r})"

    def __call__(self, images, texts, score: str = "log_likelihood") -> np.ndarray:
        """Every image against every text -> float32 array [images, texts] of `score`: log_likelihood (the caption
        log-likelihood of the text given the image), mean_log_prob (per token), pmi (log_likelihood minus the
        text's prior) or contrastive (the embeddings' cosine; models with a contrastive head). Larger is more
        similar. Each image is encoded once per call of the model's score_matrix signature."""
        if score not in SCORES:
            raise ScorerInputError(f"unknown score {score!r}: choose one of {', '.join(SCORES)}")
        texts, image_bytes = _texts(texts), _images(images)
        matrix = batch.score_matrix(self.model, image_bytes, texts)
        try:
            return ranking.ranking_scores(matrix, score, alpha=1.0)
        except ValueError as error:  # contrastive from a model without the head
            raise ScorerInputError(str(error)) from None

    def caption(self, images, beam_size: int = 3, max_length: int = 0, length_penalty: float = 0.0) -> list:
        """The best caption of each image (beam search in the model's graph; beam_size 1 is greedy)."""
        if beam_size < 1:
            raise ScorerInputError(f"beam_size must be at least 1, got {beam_size}")
        result = generate_with_signature(self.model, _images(images), beam_size, max_length, length_penalty)
        return [captions[0] for captions in result["caption"]]

    def labels(self, image, labels, template: str = zero_shot.DEFAULT_TEMPLATE, score: str = "log_likelihood") -> list:
        """Zero-shot: each label put into `template` and scored against the image -> the labels' rows, best first:
        dicts of label, prompt, score (the `score` chosen) and every score of the prompt."""
        if score not in SCORES:
            raise ScorerInputError(f"unknown score {score!r}: choose one of {', '.join(SCORES)}")
        image_bytes = _images(image)
        if len(image_bytes) != 1:
            raise ScorerInputError(f"labels() ranks labels for one image, got {len(image_bytes)}")
        try:
            return zero_shot.rank_labels(
                self.model, image_bytes, zero_shot.read_labels(_texts(labels)), template, score
            )[0]
        except (zero_shot.LabelsError, ValueError) as error:
            raise ScorerInputError(str(error)) from None

    def embed_images(self, images) -> np.ndarray:
        """Unit-length embeddings [images, contrastive_dim] (models with a contrastive head)."""
        return run_in_batches(self.model, "embed_image", {"image_bytes": _images(images)})["embedding"]

    def embed_texts(self, texts) -> np.ndarray:
        """Unit-length embeddings [texts, contrastive_dim]: their dot products with embed_images are `contrastive`."""
        return run_in_batches(self.model, "embed_text", {"text": _texts(texts)})["embedding"]
