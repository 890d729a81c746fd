"""The flags that name a dataset, shared by train.py and scripts/make_tfrecords.py (importing this module
defines them), and what they resolve to."""

import os

from absl import flags

from captioning.data import datasets, synthetic
from captioning.util import cli

FLAGS = flags.FLAGS

flags.DEFINE_enum("dataset", "synthetic", datasets.FORMATS, "Dataset format.")
flags.DEFINE_string("annotations", None, "COCO captions JSON, Karpathy JSON, Flickr token/results file or CSV.")
flags.DEFINE_string("image_dir", None, "Folder the dataset's image paths are relative to (not needed for CSV).")
flags.DEFINE_list("flickr_split_files", [], "Flickr image lists as split=path, e.g. train=Flickr_8k.trainImages.txt.")
flags.DEFINE_float("val_fraction", 0.05, "Share of images held out for validation when the data has no val split.")
flags.DEFINE_integer("synthetic_num_images", 8000, "Synthetic dataset size.")
flags.DEFINE_integer("synthetic_seed", 0, "Synthetic dataset seed (evaluate on another seed).")
flags.DEFINE_list("held_out_combinations", [], "Colour:shape pairs kept out of synthetic training, e.g. red:star.")
flags.DEFINE_integer("synthetic_max_objects", synthetic.MAX_OBJECTS, "Most objects in a synthetic scene (1 to 4; "
                     "2 is the simpler world of one and two objects).")
cli.define_flag_validators(
    ("annotations", os.path.isfile, "must name an existing file"),
    ("image_dir", os.path.isdir, "must name an existing folder"),
    ("val_fraction", lambda value: 0 <= value < 1, "must be in [0, 1)"),
    ("synthetic_num_images", lambda value: value >= 2, "must be at least 2 (training and "
                                                       "validation images)"),
    ("synthetic_max_objects", lambda value: 1 <= value <= synthetic.MAX_OBJECTS,
     f"must be 1 to {synthetic.MAX_OBJECTS}"),
    ("flickr_split_files", lambda items: all("=" in item for item in items),
     "takes split=path items, e.g. train=Flickr_8k.trainImages.txt"),
)
datasets.require_annotations_flag()


def dataset_source(image_size: int, synthetic_dir: str):
    """-> (format, annotations path, image dir, reader kwargs), writing the synthetic dataset to `synthetic_dir`
    if needed."""
    if FLAGS.dataset == "synthetic":
        held_out = synthetic.parse_combinations(FLAGS.held_out_combinations)
        annotations = datasets.ensure_synthetic_dataset(synthetic_dir, FLAGS.synthetic_num_images,
                                                        FLAGS.synthetic_seed, image_size, held_out,
                                                        FLAGS.synthetic_max_objects)
        return "coco", annotations, os.path.join(synthetic_dir, "images"), {}
    kwargs = {}
    if FLAGS.flickr_split_files:
        kwargs["split_files"] = dict(item.split("=", 1) for item in FLAGS.flickr_split_files)
    return FLAGS.dataset, FLAGS.annotations, FLAGS.image_dir, kwargs
