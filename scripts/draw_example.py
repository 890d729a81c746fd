"""Draw one synthetic scene the model has not seen and print a matching and a non-matching caption for it.

    python scripts/draw_example.py --output checkpoints/example.png
    -> checkpoints/example.png, then two lines: the scene's caption and the caption with its colour swapped
"""

import os

import numpy as np
from absl import flags

from captioning.data import scene_captions, synthetic
from captioning.util import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("output", "checkpoints/example.png", "Where to write the PNG.")
flags.DEFINE_integer("seed", 2026, "Scene seed (training uses seed 0 by default).")
flags.DEFINE_integer("image_size", 64, "Image side in pixels.")
cli.define_flag_validators(
    ("output", lambda path: not os.path.isdir(path), "is a folder: give a .png file name"),
    ("image_size", lambda value: value >= 8, "must be at least 8"),
)


def main(argv):
    del argv
    scene = synthetic.generate_scenes(1, FLAGS.seed)[0]
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    synthetic.render_scene(scene, FLAGS.image_size).save(FLAGS.output)
    matching, non_matching = scene_captions.hard_negatives(scene, np.random.default_rng(FLAGS.seed))["color"]
    print(matching)
    print(non_matching)


if __name__ == "__main__":
    cli.run(main, expected=(OSError, ValueError))  # an --output that cannot be written, or not as an image
