"""Which score ranks texts for an image, and the alpha debiasing (docs/architecture.md) stored beside the model.

Ranking texts for one image by log_likelihood favours texts the language model likes anyway (short, common
ones). `debiased = log_likelihood - alpha * prior_log_likelihood` removes that prior in part (alpha = 1 is pmi).
Evaluation picks alpha on validation data and writes it to `<version>/assets.extra/ranking.json`
(captioning.export.layout); ranking
uses it by default only when it measurably beat plain log_likelihood there.
"""

import json
import os

import numpy as np

from captioning.util import atomic
from captioning.util.errors import InvalidInput

SCORES = ("log_likelihood", "mean_log_prob", "pmi", "debiased", "contrastive")
LIKELIHOOD_SCORES = ("log_likelihood", "mean_log_prob", "contrastive")  # computable without the prior pass
AUTO = "auto"  # debiased when the stored alpha helps, otherwise log_likelihood


def debiased(log_likelihood, pmi, alpha: float):
    """log_likelihood - alpha * prior, with the prior recovered as log_likelihood - pmi (score_matrix has no
    prior output)."""
    return np.asarray(log_likelihood) - alpha * (np.asarray(log_likelihood) - np.asarray(pmi))


def read_ranking(path: str):
    """The stored ranking.json as a dict, or None when the model has none (or the path is None)."""
    if not path or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_ranking(path: str, alpha: float, helps: bool, evidence: dict) -> None:
    atomic.write_text(path, json.dumps({"alpha": alpha, "use_by_default": helps, **evidence}, indent=2))


def resolve(rank_by: str, alpha, stored) -> tuple[str, float]:
    """-> (score name, alpha) for a --rank_by choice, an explicit --alpha (or None) and the stored ranking.

    Asking for an alpha asks for debiasing; otherwise `auto` debiases only when evaluation said it helps.
    """
    if rank_by == AUTO:
        wanted = alpha is not None or bool(stored and stored.get("use_by_default"))
        rank_by = "debiased" if wanted else "log_likelihood"
    return rank_by, stored_alpha(stored) if alpha is None else float(alpha)


def stored_alpha(stored) -> float:
    """The alpha of a stored ranking; without evaluation, 1 (debiased means pmi)."""
    return float(stored["alpha"]) if stored else 1.0


def ranking_scores(scores: dict, rank_by: str, alpha: float):
    """The values of the chosen score from a dict holding log_likelihood, mean_log_prob, pmi (and contrastive)."""
    if rank_by == "debiased":
        return debiased(scores["log_likelihood"], scores["pmi"], alpha)
    if rank_by not in scores:
        raise InvalidInput(
            f"the model gives no {rank_by!r} score (contrastive needs a model trained with a "
            "contrastive head: python train.py --contrastive_weight > 0)"
        )
    return np.asarray(scores[rank_by])
