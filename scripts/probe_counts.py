"""Does a model count? For scenes with a true count caption ("two red stars", "three crosses") it pits that caption
against the number one off and prints, per form of the caption, how often each score prefers the true one. Where
`log_likelihood` wins but `pmi` does not, the language prior answered, not the image.

    python scripts/probe_counts.py --model_dir checkpoints/export --seed 2024 --num_scenes 1500
"""

import os
import sys

import numpy as np
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from captioning.util import cli  # noqa: E402

cli.quiet_start()  # before the imports below load TensorFlow

from captioning.data import scene_captions, synthetic  # noqa: E402
from captioning.inference.local import SavedModelScorer  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "checkpoints/export", "Export base directory or one version directory.")
flags.DEFINE_integer("num_scenes", 1500, "Scenes to draw; those with a true count are probed.")
flags.DEFINE_integer("seed", 2024, "Scene seed (training uses 0 by default).")
flags.DEFINE_integer("image_size", 64, "Image side in pixels (the model's).")
cli.define_flag_validators(
    ("model_dir", os.path.isdir, "must name an export folder (python train.py writes checkpoints/export)"),
    *((name, lambda value: value >= 1, "must be at least 1") for name in ("num_scenes", "image_size")),
)
SCORES = ("log_likelihood", "pmi", "contrastive")


def count_pairs(scenes, image_size: int, rng):
    """-> (images, texts: true and false alternating, the form of each pair's true caption)."""
    images, texts, forms = [], [], []
    for scene in scenes:
        counts = scene_captions.true_counts(scene)
        if not counts:
            continue
        count, shape, color = counts[int(rng.integers(len(counts)))]
        image = synthetic.render_scene_png(scene, image_size)
        images += [image, image]
        texts += [scene_captions.count_caption(count, shape, color),
                  scene_captions.count_caption(5 - count, shape, color)]  # two <-> three
        forms.append(f"{scene_captions.NUMBER_WORDS[count]} {'COLOUR ' if color else ''}SHAPEs")
    return images, texts, np.array(forms)


def main(argv):
    del argv
    scorer = SavedModelScorer(FLAGS.model_dir)
    scenes = synthetic.generate_scenes(FLAGS.num_scenes, FLAGS.seed)
    images, texts, forms = count_pairs(scenes, FLAGS.image_size, np.random.default_rng(FLAGS.seed))
    scores = scorer.score(images, texts)
    names = [name for name in SCORES if name in scores]
    print("| true caption | pairs | " + " | ".join(names) + " |\n|---|---|" + "---|" * len(names))
    for form in sorted(set(forms)):
        chosen = forms == form
        wins = [np.mean(scores[name][0::2][chosen] > scores[name][1::2][chosen]) for name in names]
        print(f"| {form} | {chosen.sum()} | " + " | ".join(f"{w:.2f}" for w in wins) + " |")


if __name__ == "__main__":
    cli.run(main)
