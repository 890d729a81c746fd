"""Turn any dataset train.py reads (COCO, Karpathy, Flickr, CSV, synthetic) into sharded TFRecords of resized
JPEG bytes plus captions, for fast training at real-data scale (python train.py --tfrecords DIR).

    python scripts/make_tfrecords.py --dataset karpathy --annotations dataset_coco.json --image_dir coco \
        --image_size 224 --output_dir coco_tfrecords
    python scripts/make_tfrecords.py --output_dir scenes_tfrecords --synthetic_num_images 8000   # synthetic

Bad rows (missing or corrupt image, empty caption) are skipped and counted, as in training. Each split gets
ceil(images / --images_per_shard) shards; give at least as many shards as training workers.
"""

import os
import time

from absl import flags

from captioning.data.dataset_flags import dataset_source, define_dataset_flags
from captioning.util import cli

FLAGS = flags.FLAGS
define_dataset_flags()
flags.DEFINE_string("output_dir", None, "Where the shards, captions files and manifest.json go.", required=True)
flags.DEFINE_integer("image_size", 64, "Side the images are resized to (the model's --image_size).")
flags.DEFINE_integer("images_per_shard", 1000, "Images per shard file.")
cli.define_flag_validators(
    ("output_dir", lambda path: not os.path.isfile(path), "is a file: give a folder (created if missing)"),
    ("image_size", lambda value: value >= 8, "must be at least 8"),
    ("images_per_shard", lambda value: value >= 1, "must be at least 1"),
)


def main(argv):
    del argv
    from captioning.data import tfrecords
    from captioning.data.datasets import load_examples

    started = time.perf_counter()
    try:
        format, annotations, image_dir, kwargs = dataset_source(
            FLAGS.image_size, os.path.join(FLAGS.output_dir, "synthetic_source")
        )
        splits = load_examples(format, annotations, image_dir, FLAGS.val_fraction, **kwargs)
        manifest = tfrecords.write_tfrecords(splits, FLAGS.output_dir, FLAGS.image_size, FLAGS.images_per_shard)
    except (ValueError, OSError) as error:
        return cli.fail(error)
    for split, entry in manifest["splits"].items():
        print(f"{split}: {entry['images']} images, {entry['captions']} captions in {len(entry['files'])} shard(s)")
    print(f"wrote {FLAGS.output_dir} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    cli.run(main)
