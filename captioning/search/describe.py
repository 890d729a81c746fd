"""Labels and a caption for one image, as `get_similarity_score.py --labels` and `--generate` give them."""

from captioning.inference import zero_shot
from captioning.inference.captions import generate_with_signature


def describe(model, image_bytes: bytes, labels, template: str = zero_shot.DEFAULT_TEMPLATE, beam_size: int = 3,
             rank_by: str = "log_likelihood", alpha: float = 1.0) -> dict:
    """{labels: best first (label, prompt, score, log_likelihood, mean_log_prob, pmi), captions: best first
    (caption, log_likelihood)} for one image; `model` is a SearchModel. No labels: captions only."""
    result = {"labels": [], "captions": []}
    if labels:
        result["labels"] = zero_shot.rank_labels(model.runner, [image_bytes], list(labels), template, rank_by,
                                                 alpha)[0]
    if model.has("generate_caption"):
        generated = generate_with_signature(model.runner, [image_bytes], beam_size=beam_size)
        result["captions"] = [{"caption": caption, "log_likelihood": float(score)} for caption, score in
                              zip(generated["caption"][0], generated["log_likelihood"][0]) if score > -float("inf")]
    return result
