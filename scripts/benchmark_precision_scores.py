"""One trained model's scores in float32 and in mixed_bfloat16 on the same weights: the largest differences,
whether they rank texts for each image the same, and the scoring time of each.

    python scripts/benchmark_precision_scores.py --run_dir checkpoints

Every one of --num_images fresh synthetic scenes is scored against the full captions of all of them
(score_matrix's computation), once per precision.
"""

import os
import time

import numpy as np
from absl import flags

from captioning.util import cli

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "run_dir", "checkpoints", "A trained model's directory (config.json, vocabulary.txt, model.weights.h5)."
)
flags.DEFINE_integer("num_images", 40, "Scenes scored, each against every scene's caption.")
flags.DEFINE_integer("seed", 321, "Scene seed.")
cli.define_flag_validators(
    ("run_dir", os.path.isdir, "must name a trained model's folder (python train.py writes checkpoints/)"),
    ("num_images", lambda value: value >= 1, "must be at least 1"),
)


def score(policy: str, pixels, texts) -> tuple:
    import tensorflow as tf

    from captioning.data.text import Tokenizer
    from captioning.model import scoring
    from captioning.training import artifacts, precision

    with precision.dtype_policy(policy):
        model, vocabulary = artifacts.load_trained_model(FLAGS.run_dir)
    tokens = Tokenizer(vocabulary, model.config.max_length)(tf.constant(texts))
    matrix = tf.function(lambda p: scoring.matrix_scores(model, model.encode_images(p), tokens))
    matrix(pixels)  # traces
    started = time.perf_counter()
    result = {name: value.numpy() for name, value in matrix(pixels).items()}
    return result, time.perf_counter() - started


def pairwise_agreement(a, b) -> float:
    """Share of (image, text i, text j) orderings the two score matrices agree on (ties count as agreeing)."""
    same = total = 0
    for row_a, row_b in zip(a, b):
        order_a = np.sign(row_a[:, None] - row_a[None, :])
        order_b = np.sign(row_b[:, None] - row_b[None, :])
        upper = np.triu_indices(len(row_a), 1)
        same += int(np.sum(order_a[upper] == order_b[upper]))
        total += len(upper[0])
    return same / total


def main(argv):
    del argv
    from captioning.data import scene_captions, synthetic
    from captioning.model.config import ModelConfig

    config = ModelConfig.load(os.path.join(FLAGS.run_dir, "config.json"))
    scenes = synthetic.generate_scenes(FLAGS.num_images, FLAGS.seed)
    pixels = np.stack([np.asarray(synthetic.render_scene(s, config.image_size), np.float32) for s in scenes])
    texts = [scene_captions.full_caption(s) for s in scenes]
    full, full_seconds = score("float32", pixels, texts)
    half, half_seconds = score("mixed_bfloat16", pixels, texts)
    print(
        f"{FLAGS.num_images} images x {len(texts)} texts, model {FLAGS.run_dir} ({config.backbone}, "
        f"{config.image_size}px)"
    )
    print("| score | largest difference float32 vs bfloat16 | typical size (median abs. value) |")
    print("|---|---:|---:|")
    for name in ("log_likelihood", "mean_log_prob", "pmi"):
        print(f"| {name} | {np.abs(full[name] - half[name]).max():.4f} | {np.median(np.abs(full[name])):.3f} |")
    ll_full, ll_half = full["log_likelihood"], half["log_likelihood"]
    print(
        f"\nbest text per image the same: {np.mean(ll_full.argmax(1) == ll_half.argmax(1)):.1%}; "
        f"best image per text the same: {np.mean(ll_full.argmax(0) == ll_half.argmax(0)):.1%}; "
        f"pairwise text orderings that agree: {pairwise_agreement(ll_full, ll_half):.2%}"
    )
    print(f"scoring time: float32 {full_seconds:.2f} s, mixed_bfloat16 {half_seconds:.2f} s")
    return 0


if __name__ == "__main__":
    cli.run(main)
