"""Labels and a caption for one image, as `get_similarity_score.py --labels` and `--generate` give them."""

from captioning.inference import ranking, zero_shot


def describe(model, image_bytes: bytes, labels, template: str = zero_shot.DEFAULT_TEMPLATE, beam_size: int = 3) -> dict:
    """{labels: best first (label, prompt, score, log_likelihood, mean_log_prob, pmi), captions: best first
    (caption, log_likelihood)} for one image; `model` is a SearchModel. Labels rank as `get_similarity_score.py
    --labels` ranks them: --rank_by auto with the model's stored alpha. No labels: captions only."""
    result = {"labels": [], "captions": []}
    if labels:
        rank_by, alpha = ranking.resolve(ranking.AUTO, None, model.stored_ranking())
        result["labels"] = model.rank_labels(image_bytes, labels, template, rank_by, alpha)
    if model.has("generate_caption"):
        result["captions"] = [
            {"caption": caption, "log_likelihood": float(score)}
            for caption, score in model.captions(image_bytes, beam_size)
            if score > -float("inf")
        ]
    return result
