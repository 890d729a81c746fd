"""Measure an exported model: retrieval recall@k both ways, hard negatives, caption quality; choose alpha.

    python -m captioning.evaluate --model_dir checkpoints/export --seed 12345 --num_images 500      # synthetic
    python -m captioning.evaluate --model_dir M --dataset karpathy --annotations dataset_coco.json \
        --image_dir coco/ --split test --output_json report.json

Retrieval: over `--retrieval_images` images of the split and all their captions, text->image recall@k (the
caption's own image in the top k) and image->text recall@k (any of the image's captions in the top k), for
log_likelihood, mean_log_prob, pmi, the alpha-debiased score and, for a model with a contrastive head,
contrastive: every score side by side. Alpha is chosen on the validation split (synthetic: scenes from
`--val_seed`) by image->text recall@1 and stored with the model (captioning.inference.ranking). Synthetic data adds
hard-negative accuracy by kind (colour, shape, size, relation swap, binding) for every score on fresh scenes and
on held-out colour-shape combinations. Generated captions are compared with the references by pycocoevalcap's
BLEU-4, METEOR (needs Java), ROUGE-L and CIDEr.
"""

import dataclasses
import json
import math
import shutil

import numpy as np

from captioning.data import readers, scene_captions, synthetic
from captioning.data.validation import validate_examples
from captioning.export import layout
from captioning.inference import batch, ranking
from captioning.inference.captions import generate_with_signature
from captioning.inference.rows import run_in_batches
from captioning.util.errors import InvalidInput

SCORES = ("log_likelihood", "mean_log_prob", "pmi")  # what every model gives; "contrastive" joins where it has a head
KS = (1, 5, 10)
ALPHAS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
# Debiasing is used by default only when its gain over log_likelihood on validation is unlikely to be luck.
SIGNIFICANCE = 0.05


@dataclasses.dataclass
class RetrievalSet:
    """Images, every caption of them, and which image each caption belongs to."""

    image_bytes: list
    texts: list
    text_image: np.ndarray  # [texts] -> index into image_bytes
    references: list  # per image, its captions (references for caption metrics)


def scores_of(scores: dict, alpha: float = None) -> dict:
    """The scores to report from a scorer's outputs: SCORES, the alpha-debiased score when `alpha` is given, and
    contrastive when the model has it."""
    chosen = {name: scores[name] for name in SCORES}
    if alpha is not None:
        chosen["debiased"] = ranking.debiased(scores["log_likelihood"], scores["pmi"], alpha)
    if "contrastive" in scores:
        chosen["contrastive"] = scores["contrastive"]
    return chosen


def hard_negative_accuracy(model, scenes, image_size: int, seed: int = 0, alpha: float = None) -> dict:
    """kind -> {"pairs": n, score: accuracy} for each score of `scores_of` (a tie counts as a miss); `model` is any
    captioning.inference.runners.ModelRunner, local or remote."""
    rng = np.random.default_rng(seed)
    images, texts, kinds = [], [], []
    for scene in scenes:
        encoded = synthetic.render_scene_png(scene, image_size)
        for kind, (true, false) in scene_captions.hard_negatives(scene, rng).items():
            images += [encoded, encoded]
            texts += [true, false]
            kinds.append(kind)
    scores = scores_of(run_in_batches(model, "serving_default", {"image_bytes": images, "text": texts}), alpha)
    kinds = np.array(kinds)
    results = {}
    for kind in sorted(set(kinds)):
        chosen = kinds == kind
        results[kind] = {"pairs": int(chosen.sum())}
        for name, values in scores.items():
            true, false = values[0::2][chosen], values[1::2][chosen]
            results[kind][name] = float(np.mean(true > false))
    return results


def retrieval_ranks(matrix: np.ndarray, text_image=None) -> tuple[np.ndarray, np.ndarray]:
    """matrix[i, j] = score of image i with text j; text j belongs to image text_image[j] (by default text i to
    image i). -> (rank of each text's image among the images, rank of each image's best own text among the
    texts), a rank counting the candidates that score strictly higher (ties in the right answer's favour)."""
    text_image = np.arange(matrix.shape[1]) if text_image is None else np.asarray(text_image)
    own = matrix[text_image, np.arange(matrix.shape[1])]  # each text's score with its own image
    text_to_image = (matrix > own[None, :]).sum(axis=0)
    text_rank_in_own_row = (matrix[text_image] > own[:, None]).sum(axis=1)
    image_to_text = np.full(matrix.shape[0], np.iinfo(np.int64).max)
    np.minimum.at(image_to_text, text_image, text_rank_in_own_row)
    return text_to_image, image_to_text


def recall_at_k(matrix: np.ndarray, k: int, text_image=None) -> dict:
    text_to_image, image_to_text = retrieval_ranks(matrix, text_image)
    return {"text_to_image": float(np.mean(text_to_image < k)), "image_to_text": float(np.mean(image_to_text < k))}


def recall_table(matrix: np.ndarray, text_image, ks=KS) -> dict:
    return {f"R@{k}": recall_at_k(matrix, k, text_image) for k in ks}


def score_matrices(model, retrieval_set: RetrievalSet) -> dict:
    return batch.score_matrix(model, retrieval_set.image_bytes, retrieval_set.texts)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign (McNemar) test: how likely a split at least this uneven is if either way is a coin
    flip."""
    n = wins + losses
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def choose_alpha(matrices: dict, text_image) -> dict:
    """The alpha in ALPHAS with the best image->text recall@1 (the smallest on ties). It helps when the images
    it ranks right and log_likelihood (alpha 0) does not outnumber the reverse beyond SIGNIFICANCE."""
    first = {
        alpha: retrieval_ranks(ranking.debiased(matrices["log_likelihood"], matrices["pmi"], alpha), text_image)[1] == 0
        for alpha in ALPHAS
    }
    best = max(ALPHAS, key=lambda alpha: (first[alpha].mean(), -alpha))
    wins, losses = int(np.sum(first[best] & ~first[0.0])), int(np.sum(first[0.0] & ~first[best]))
    p_value = sign_test(wins, losses)
    return {
        "alpha": float(best),
        "helps": bool(wins > losses and p_value < SIGNIFICANCE),
        "val_images": len(first[best]),
        "wins": wins,
        "losses": losses,
        "p_value": p_value,
        "val_image_to_text_R@1": {str(alpha): float(hits.mean()) for alpha, hits in first.items()},
    }


def retrieval_report(matrices: dict, text_image, alpha: float) -> dict:
    return {name: recall_table(matrix, text_image) for name, matrix in scores_of(matrices, alpha).items()}


def normalized(texts) -> list:
    """The model's own normalisation (lower case, punctuation stripped), so metrics compare words."""
    from captioning.data.text import split_words  # imports TensorFlow: only when captions are compared

    words = split_words(np.array(texts, dtype=object)).to_list()
    return [" ".join(w.decode("utf-8") for w in row) for row in words]


def caption_metrics(candidates: list, references: list) -> dict:
    """pycocoevalcap's BLEU-4, METEOR, ROUGE-L and CIDEr of one candidate per image against its references.
    METEOR runs a Java program; without Java it is reported as None with a note instead of failing."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    flat = normalized(candidates + [r for refs in references for r in refs])
    candidate_of = {i: [flat[i]] for i in range(len(candidates))}
    references_of, offset = {}, len(candidates)
    for i, refs in enumerate(references):
        references_of[i], offset = flat[offset : offset + len(refs)], offset + len(refs)
    bleu, _ = Bleu(4).compute_score(references_of, candidate_of, verbose=0)
    metrics = {
        "BLEU-4": float(bleu[3]),
        "ROUGE-L": float(Rouge().compute_score(references_of, candidate_of)[0]),
        "CIDEr": float(Cider().compute_score(references_of, candidate_of)[0]),
    }
    metrics["METEOR"], note = meteor(references_of, candidate_of)
    return {**metrics, "note": note} if note else metrics


def meteor(references_of: dict, candidate_of: dict) -> tuple:
    """-> (METEOR or None, why it is missing). It runs a Java program; its failure must not lose the others."""
    if not shutil.which("java"):
        return None, "METEOR unavailable: it runs Java and no `java` is on PATH (install a Java runtime)"
    from pycocoevalcap.meteor.meteor import Meteor

    try:
        return float(Meteor().compute_score(references_of, candidate_of)[0]), None
    except Exception as error:  # a broken pipe, a JVM that cannot start, unparsable output
        return None, f"METEOR unavailable: the Java scorer failed ({type(error).__name__}: {error})"


def generated_caption_report(model, retrieval_set: RetrievalSet, beam_size: int) -> dict:
    generated = generate_with_signature(model, retrieval_set.image_bytes, beam_size)
    best = [captions[0] for captions in generated["caption"]]
    return {
        "beam_size": beam_size,
        "images": len(best),
        **caption_metrics(best, retrieval_set.references),
        "examples": [{"generated": g, "reference": refs[0]} for g, refs in zip(best[:5], retrieval_set.references)],
    }


def synthetic_set(scenes, image_size: int, seed: int, captions_per_image: int = 5) -> RetrievalSet:
    """Each scene's full caption is its one retrieval text; describe_scene's phrasings are the references."""
    rng = np.random.default_rng([seed, 2])
    return RetrievalSet(
        [synthetic.render_scene_png(s, image_size) for s in scenes],
        [scene_captions.full_caption(s) for s in scenes],
        np.arange(len(scenes)),
        [scene_captions.describe_scene(s, rng, captions_per_image) for s in scenes],
    )


def dataset_set(examples, max_images: int) -> RetrievalSet:
    """The first `max_images` images of a split (file order) with all their captions."""
    captions_of = {}
    for example in examples:
        if example.image_path in captions_of or len(captions_of) < max_images:
            captions_of.setdefault(example.image_path, []).append(example.caption)
    texts = [caption for captions in captions_of.values() for caption in captions]
    text_image = np.repeat(np.arange(len(captions_of)), [len(c) for c in captions_of.values()])
    image_bytes = [batch.read_bytes(path) for path in captions_of]  # validated examples: all readable
    return RetrievalSet(image_bytes, texts, text_image, list(captions_of.values()))


def evaluate_retrieval(model, test: RetrievalSet, val: RetrievalSet, beam_size: int) -> dict:
    """Retrieval with alpha chosen on `val` (None: no validation data, alpha 1 = pmi) and caption metrics."""
    choice = choose_alpha(score_matrices(model, val), val.text_image) if val else None
    alpha = choice["alpha"] if choice else 1.0
    report = {
        "images": len(test.image_bytes),
        "texts": len(test.texts),
        "alpha": choice or {"alpha": alpha, "helps": False, "note": "no validation split: alpha not chosen"},
        "retrieval": retrieval_report(score_matrices(model, test), test.text_image, alpha),
    }
    if beam_size:
        report["captions"] = generated_caption_report(model, test, beam_size)
    return report


def evaluate_synthetic(
    model,
    image_size: int,
    seed: int,
    num_images: int,
    retrieval_images: int,
    val_seed: int = None,
    held_out=(),
    beam_size: int = 0,
) -> dict:
    """Hard negatives on `num_images` fresh scenes, recall over the first `retrieval_images` with alpha chosen
    on as many scenes from `val_seed` (default seed + 1), and generated captions with `beam_size` (0: none).
    With `held_out` combinations, hard negatives are also measured on scenes made only of them. `model` is a
    captioning.inference.runners.ModelRunner."""
    scenes = synthetic.generate_scenes(num_images, seed)
    val_seed = seed + 1 if val_seed is None else val_seed
    val = synthetic_set(synthetic.generate_scenes(retrieval_images, val_seed), image_size, val_seed)
    report = {
        "seed": seed,
        "val_seed": val_seed,
        "num_images": num_images,
        "retrieval_images": retrieval_images,
        **evaluate_retrieval(model, synthetic_set(scenes[:retrieval_images], image_size, seed), val, beam_size),
    }
    alpha = report["alpha"]["alpha"]
    report["hard_negatives"] = hard_negative_accuracy(model, scenes, image_size, seed, alpha)
    if held_out:
        held_out_scenes = synthetic.generate_scenes(num_images, seed, held_out, require_held_out=True)
        report["held_out"] = {
            "combinations": [":".join(c) for c in held_out],
            "hard_negatives": hard_negative_accuracy(model, held_out_scenes, image_size, seed, alpha),
        }
    return report


def evaluate_dataset(
    model, format: str, annotations: str, image_dir: str, split: str, retrieval_images: int, beam_size: int
) -> dict:
    examples, skipped = validate_examples(readers.read_dataset(format, annotations, image_dir))
    splits = readers.group_by_split(examples)
    if not splits.get(split):
        found = ", ".join(name or "(none)" for name in splits) or "nothing usable"
        raise InvalidInput(f"{annotations} has no usable {split!r} examples (splits: {found}; {skipped.summary()})")
    val = dataset_set(splits["val"], retrieval_images) if splits.get("val") else None
    return {
        "dataset": format,
        "annotations": annotations,
        "split": split,
        "skipped": skipped.summary(),
        **evaluate_retrieval(model, dataset_set(splits[split], retrieval_images), val, beam_size),
    }


def _hard_negative_table(results: dict, alpha: float) -> list:
    names = [name for name in next(iter(results.values())) if name != "pairs"]
    labels = [f"debiased (alpha {alpha:g})" if name == "debiased" else name for name in names]
    lines = ["| swap kind | pairs | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(names)]
    for kind, values in results.items():
        lines.append(f"| {kind} | {values['pairs']} | " + " | ".join(f"{values[s]:.3f}" for s in names) + " |")
    return lines


def markdown_report(report: dict) -> str:
    lines, alpha = [], report["alpha"]["alpha"]
    if "hard_negatives" in report:
        lines += [
            "Hard negatives (accuracy of the true caption over the swapped one):",
            "",
            *_hard_negative_table(report["hard_negatives"], alpha),
            "",
        ]
    if "held_out" in report:
        lines += [
            f"Held-out colour-shape combinations ({', '.join(report['held_out']['combinations'])}):",
            "",
            *_hard_negative_table(report["held_out"]["hard_negatives"], alpha),
            "",
        ]
    retrieval = report["retrieval"]
    ks = [key for key in next(iter(retrieval.values()))]
    lines += [
        f"Retrieval over {report['images']} images ({report['texts']} captions):",
        "",
        "| score | " + " | ".join(f"text→image {k} | image→text {k}" for k in ks) + " |",
        "|---|" + "---|---|" * len(ks),
    ]
    for name, values in retrieval.items():
        label = f"debiased (alpha {report['alpha']['alpha']:g})" if name == "debiased" else name
        lines.append(
            f"| {label} | "
            + " | ".join(f"{values[k]['text_to_image']:.3f} | {values[k]['image_to_text']:.3f}" for k in ks)
            + " |"
        )
    alpha = report["alpha"]
    evidence = (
        f" ({alpha['note']})"
        if "note" in alpha
        else f" (on {alpha['val_images']} validation images it ranked {alpha['wins']} right that log_likelihood "
        f"did not and {alpha['losses']} the other way; sign test p = {alpha['p_value']:.3f})"
    )
    lines += [
        "",
        f"alpha = {alpha['alpha']:g}, chosen on validation image→text R@1; "
        f"{'used' if alpha['helps'] else 'not used'} by default ranking{evidence}",
    ]
    if "captions" in report:
        captions = report["captions"]
        meteor = "n/a" if captions["METEOR"] is None else f"{captions['METEOR']:.3f}"
        lines += [
            "",
            f"Generated captions (beam {captions['beam_size']}, {captions['images']} images):",
            "",
            "| BLEU-4 | METEOR | ROUGE-L | CIDEr |",
            "|---|---|---|---|",
            f"| {captions['BLEU-4']:.3f} | {meteor} | {captions['ROUGE-L']:.3f} | {captions['CIDEr']:.3f} |",
        ]
        if "note" in captions:
            lines.append(f"\n{captions['note']}")
    return "\n".join(lines)


def held_out_of_training(model) -> list:
    """The colour-shape combinations the model's synthetic training data held out, if that data is still there."""
    try:
        with open(model.extra_file(layout.METADATA_FILE), encoding="utf-8") as f:
            annotations = json.load(f)["dataset"]["annotations"]
        with open(annotations, encoding="utf-8") as f:
            return [tuple(c) for c in json.load(f).get("info", {}).get("held_out", [])]
    except (OSError, KeyError, ValueError):
        return []
