"""Measure an exported model on fresh synthetic scenes: hard-negative accuracy by kind and retrieval recall.

    python -m captioning.evaluate --model_dir checkpoints/export --seed 12345 --num_images 500

Hard negatives: each scene's full caption against the same caption with one attribute changed (colour, shape,
size, or the two objects of a relation exchanged); accuracy is how often the true caption scores higher.
Recall@k: over `--retrieval_images` scenes, each scene's full caption is the one relevant text for its image.
"""

import io
import json
import sys

import numpy as np
from absl import app, flags

from captioning.data import synthetic

SCORES = ("log_likelihood", "mean_log_prob", "pmi")


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def hard_negative_accuracy(scorer, scenes, image_size: int, seed: int = 0) -> dict:
    """kind -> {"pairs": n, score: accuracy} for each score in SCORES."""
    rng = np.random.default_rng(seed)
    images, texts, kinds = [], [], []
    for scene in scenes:
        encoded = png_bytes(synthetic.render_scene(scene, image_size))
        for kind, (true, false) in synthetic.hard_negatives(scene, rng).items():
            images += [encoded, encoded]
            texts += [true, false]
            kinds.append(kind)
    scores = scorer.score(images, texts)
    kinds = np.array(kinds)
    results = {}
    for kind in sorted(set(kinds)):
        chosen = kinds == kind
        results[kind] = {"pairs": int(chosen.sum())}
        for name in SCORES:
            true, false = scores[name][0::2][chosen], scores[name][1::2][chosen]
            results[kind][name] = float(np.mean(true > false))
    return results


def recall_at_k(matrix: np.ndarray, k: int) -> dict:
    """matrix[i, j] = score of image i with text j, where text i is the (only) relevant text of image i."""
    diagonal = np.diag(matrix)
    # Rank = how many candidates score strictly higher than the right one (ties count in its favour).
    text_to_image = (matrix > diagonal[None, :]).sum(axis=0)
    image_to_text = (matrix > diagonal[:, None]).sum(axis=1)
    return {"text_to_image": float(np.mean(text_to_image < k)), "image_to_text": float(np.mean(image_to_text < k))}


def retrieval_recall(scorer, scenes, image_size: int, ks=(1, 5, 10)) -> dict:
    images = [png_bytes(synthetic.render_scene(s, image_size)) for s in scenes]
    matrix = scorer.score_matrix(images, [synthetic.full_caption(s) for s in scenes])
    return {name: {f"R@{k}": recall_at_k(matrix[name], k) for k in ks} for name in SCORES}


def markdown_report(report: dict) -> str:
    lines = ["| swap kind | pairs | " + " | ".join(SCORES) + " |", "|---|---|" + "---|" * len(SCORES)]
    for kind, values in report["hard_negatives"].items():
        lines.append(f"| {kind} | {values['pairs']} | " + " | ".join(f"{values[s]:.3f}" for s in SCORES) + " |")
    lines += ["", f"Retrieval over {report['retrieval_images']} images:", "",
              "| score | text→image R@1 | image→text R@1 | text→image R@5 | image→text R@5 |", "|---|---|---|---|---|"]
    for name, values in report["retrieval"].items():
        lines.append(f"| {name} | {values['R@1']['text_to_image']:.3f} | {values['R@1']['image_to_text']:.3f} | "
                     f"{values['R@5']['text_to_image']:.3f} | {values['R@5']['image_to_text']:.3f} |")
    return "\n".join(lines)


def evaluate_synthetic(scorer, image_size: int, seed: int, num_images: int, retrieval_images: int) -> dict:
    scenes = synthetic.generate_scenes(num_images, seed)
    return {"seed": seed, "num_images": num_images, "retrieval_images": retrieval_images,
            "hard_negatives": hard_negative_accuracy(scorer, scenes, image_size, seed),
            "retrieval": retrieval_recall(scorer, scenes[:retrieval_images], image_size)}


FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "checkpoints/export", "Export base directory or one version directory.")
flags.DEFINE_integer("seed", 12345, "Scene seed; use one never used in training.")
flags.DEFINE_integer("num_images", 500, "Scenes for hard-negative accuracy.")
flags.DEFINE_integer("retrieval_images", 100, "Scenes for recall@k.")
flags.DEFINE_string("output_json", None, "Also write the report here.")


def main(argv):
    del argv
    from captioning.config import ModelConfig
    from captioning.saved_model_scorer import SavedModelScorer

    scorer = SavedModelScorer(FLAGS.model_dir)
    image_size = ModelConfig.load(scorer.extra_file("config.json")).image_size
    report = evaluate_synthetic(scorer, image_size, FLAGS.seed, FLAGS.num_images, FLAGS.retrieval_images)
    report["model"] = scorer.path
    print(markdown_report(report))
    if FLAGS.output_json:
        with open(FLAGS.output_json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
