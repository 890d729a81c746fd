"""Does a model count? For scenes with a true count caption ("two red stars", "three crosses") it pits that caption
against the number one off and prints, per form of the caption, how often each score prefers the true one. Where
`log_likelihood` wins but `pmi` does not, the language prior answered, not the image. The last two columns split
`log_likelihood` where the two captions differ: at the number itself, and over the words after it (the colour or
the shape, then [end]), which a model that reads the image must also score by what the image shows.

A second table asks more than the swap: of every count caption the grammar can state (two or three, each shape,
with or without each colour: 90), is the one each score ranks first true of the scene?

    python scripts/probe_counts.py --model_dir checkpoints/export --seed 2024 --num_scenes 1500
"""

import numpy as np
from absl import flags

from captioning.util import cli

cli.quiet_start()  # before the imports below load TensorFlow

from captioning.data import scene_captions, synthetic  # noqa: E402
from captioning.inference.local import SavedModelScorer  # noqa: E402
from captioning.inference.rows import run_in_batches  # noqa: E402

FLAGS = flags.FLAGS
cli.define_model_dir_flag()
cli.define_scene_flags(seed=2024)
flags.DEFINE_integer("num_scenes", 1500, "Scenes to draw; those with a true count are probed.")
flags.DEFINE_integer("num_ranked", 200, "Scenes with a true count whose 90 count captions are all scored.")
cli.define_flag_validators(
    *((name, lambda value: value >= 1, "must be at least 1") for name in ("num_scenes", "num_ranked")),
)
SCORES = ("log_likelihood", "pmi", "contrastive")
EVERY_COUNT = [
    (count, shape, color)
    for count in scene_captions.NUMBER_WORDS
    for shape in synthetic.SHAPES
    for color in (None, *synthetic.COLORS)
]


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
        texts += [
            scene_captions.count_caption(count, shape, color),
            scene_captions.count_caption(5 - count, shape, color),
        ]  # two <-> three
        forms.append(f"{scene_captions.NUMBER_WORDS[count]} {'COLOUR ' if color else ''}SHAPEs")
    return images, texts, np.array(forms)


def main(argv):
    del argv
    scorer = SavedModelScorer(FLAGS.model_dir)
    scenes = synthetic.generate_scenes(FLAGS.num_scenes, FLAGS.seed)
    images, texts, forms = count_pairs(scenes, FLAGS.image_size, np.random.default_rng(FLAGS.seed))
    scores = scorer.score(images, texts)
    names = [name for name in SCORES if name in scores]
    log_prob = run_in_batches(scorer, "cross_attention", {"image_bytes": images, "text": texts}, 64)["log_prob"]
    scores.update({"at the number": log_prob[:, 0], "after it": log_prob[:, 1:].sum(axis=1)})
    columns = names + ["at the number", "after it"]
    print("| true caption | pairs | " + " | ".join(columns) + " |\n|---|---|" + "---|" * len(columns))
    for form in sorted(set(forms)):
        chosen = forms == form
        wins = [np.mean(scores[name][0::2][chosen] > scores[name][1::2][chosen]) for name in columns]
        print(f"| {form} | {chosen.sum()} | " + " | ".join(f"{w:.2f}" for w in wins) + " |")
    ranked = [scene for scene in scenes if scene_captions.true_counts(scene)][: FLAGS.num_ranked]
    print(
        f"\n| best of {len(EVERY_COUNT)} count captions is true | scenes | "
        + " | ".join(names)
        + " |\n|---|---|"
        + "---|" * len(names)
    )
    print(
        f"| all | {len(ranked)} | "
        + " | ".join(f"{rate:.2f}" for rate in best_count_is_true(scorer, ranked, FLAGS.image_size, names))
        + " |"
    )


def best_count_is_true(scorer, scenes, image_size: int, names) -> list:
    """Per score: the share of `scenes` whose best-scored count caption, of EVERY_COUNT, is true."""
    texts = [scene_captions.count_caption(*count) for count in EVERY_COUNT]
    hits = np.zeros(len(names))
    for scene in scenes:
        image = synthetic.render_scene_png(scene, image_size)
        scores = scorer.score([image] * len(texts), texts)
        true = set(scene_captions.true_counts(scene))
        hits += [EVERY_COUNT[int(np.argmax(scores[name]))] in true for name in names]
    return list(hits / max(len(scenes), 1))


if __name__ == "__main__":
    cli.run(main)
