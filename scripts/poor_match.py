"""Does the search page's "nothing matches well" notice fire when it should? The best result's log-likelihood per
token (mean_log_prob) over a collection of unseen synthetic scenes, for texts that describe an image in it and for
texts from outside the model's world, against the server's default --poor_match_mean_log_prob
(captioning.search.retrieval.POOR_MATCH_MEAN_LOG_PROB); the best cosine (stage 1's score) beside it.

    python scripts/poor_match.py --model_dir checkpoints/export
    python scripts/poor_match.py --model_dir checkpoints/export --images 60 --seed 7000003

A good cut-off marks every outside text and no text that describes a collected image. Measure a model of your own
the same way and start the server with its --poor_match_mean_log_prob.
"""

import argparse
import sys

import numpy as np

from captioning import Scorer
from captioning.data import scene_captions, synthetic
from captioning.search.retrieval import POOR_MATCH_MEAN_LOG_PROB
from captioning.util import cli

# Texts a user might type that no synthetic scene shows: other subjects, other words, typing noise.
OUTSIDE = (
    "a cat sleeping on a sofa",
    "a photo of a dog",
    "two people riding bicycles",
    "the stock market fell today",
    "a bowl of fruit on a table",
    "sunset over the mountains",
    "a red car parked on the street",
    "a plate of spaghetti",
    "qwerty asdf",
    "hello",
    "an airplane in the sky",
    "a man holding an umbrella",
    "three gray crosses",
    "a purple elephant",
    "the quick brown fox jumps over the lazy dog",
    "xyz",
    "a green tree next to a house",
    "a birthday cake with candles",
    "blue",
    "a",
)


def spread(values) -> str:
    low, p10, mid, p90, high = np.percentile(values, [0, 10, 50, 90, 100])
    return f"{low:.3f} | {p10:.3f} | {mid:.3f} | {p90:.3f} | {high:.3f}"


def parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", default="checkpoints/export")
    parser.add_argument(
        "--images", type=cli.at_least_one, default=60, help="Unseen scenes in the collection (the page's demo)."
    )
    parser.add_argument("--seed", type=int, default=7_000_003, help="Their seed: no training run uses it.")
    return parser


def main(args):
    scenes = synthetic.generate_scenes(args.images, seed=args.seed)
    scorer = Scorer(args.model_dir)
    images = [synthetic.render_scene_png(scene, 64) for scene in scenes]
    collection = scorer.embed_images(images)
    queries = {
        "a collected scene's full caption": [scene_captions.full_caption(scene) for scene in scenes],
        "one object of a collected scene": [scene_captions.phrase(scene.objects[0]) for scene in scenes],
        "outside the world": list(OUTSIDE),
    }
    print(
        f"The best of {args.images} unseen scenes (seed {args.seed}) for each query, model {args.model_dir}; "
        f"the server's default cut-off {POOR_MATCH_MEAN_LOG_PROB} (below it: 'nothing matches well')\n"
    )
    print("| queries | count | score | min | p10 | median | p90 | max | marked poor |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for name, texts in queries.items():
        per_token = scorer(images=images, texts=texts, score="mean_log_prob").max(axis=0)
        cosine = (scorer.embed_texts(texts) @ collection.T).max(axis=1)
        marked = f"{np.mean(per_token < POOR_MATCH_MEAN_LOG_PROB):.0%}"
        print(f"| {name} | {len(texts)} | mean_log_prob | {spread(per_token)} | {marked} |")
        print(f"| | | cosine | {spread(cosine)} | |")


if __name__ == "__main__":
    sys.exit(cli.run_parsed(main, parser()))
