"""Write the built-in synthetic scenes as a COCO captions dataset (D/images/, D/annotations/captions.json).

python scripts/make_synthetic_dataset.py --output_dir /tmp/scenes --num_images 1000 --seed 7
"""

import os

from absl import flags

from captioning.data.synthetic import parse_combinations
from captioning.data.synthetic_dataset import write_coco_dataset
from captioning.util import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "Where to write images/ and annotations/captions.json.", required=True)
flags.DEFINE_integer("num_images", 1000, "Number of scenes.")
flags.DEFINE_integer("seed", 0, "Scene seed: the same seed gives the same dataset.")
flags.DEFINE_integer("image_size", 64, "Image side in pixels.")
flags.DEFINE_integer("captions_per_image", 5, "Captions per image.")
flags.DEFINE_list("held_out_combinations", [], "Colour:shape pairs never drawn, e.g. red:star,blue:cross.")
cli.define_flag_validators(
    ("output_dir", lambda path: not os.path.isfile(path), "is a file: give a folder (created if missing)"),
    ("num_images", lambda value: value >= 1, "must be at least 1"),
    ("image_size", lambda value: value >= 8, "must be at least 8"),
    ("captions_per_image", lambda value: value >= 1, "must be at least 1"),
)


def main(argv):
    del argv
    held_out = parse_combinations(FLAGS.held_out_combinations)
    path = write_coco_dataset(
        FLAGS.output_dir, FLAGS.num_images, FLAGS.seed, FLAGS.image_size, held_out, FLAGS.captions_per_image
    )
    print(f"wrote {FLAGS.num_images} images and {path}")


if __name__ == "__main__":
    cli.run(main, expected=(ValueError, OSError))  # a bad --held_out_combinations, an unwritable --output_dir
