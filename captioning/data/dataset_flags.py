"""The flags that name a dataset, defined once here for every entry point that reads one (train.py,
scripts/make_tfrecords.py, python -m captioning.evaluate), and what they resolve to. Importing this module defines
nothing: an entry point calls the define_* functions it needs."""

import os

from absl import flags

from captioning.data import datasets, synthetic
from captioning.util import cli

FLAGS = flags.FLAGS


def define_source_flags() -> None:
    """--dataset, --annotations and --image_dir, checked at flag parsing (every format but synthetic needs its
    captions file)."""
    flags.DEFINE_enum("dataset", "synthetic", datasets.FORMATS, "Dataset format.")
    flags.DEFINE_string("annotations", None, "COCO captions JSON, Karpathy JSON, Flickr token/results file or CSV.")
    flags.DEFINE_string("image_dir", None, "Folder the dataset's image paths are relative to (not needed for CSV).")
    cli.define_flag_validators(
        ("annotations", os.path.isfile, "must name an existing file"),
        ("image_dir", os.path.isdir, "must name an existing folder"),
    )
    flags.register_multi_flags_validator(
        ["dataset", "annotations"],
        lambda values: values["dataset"] == "synthetic" or bool(values["annotations"]),
        message="--dataset other than synthetic needs --annotations (its captions file)",
    )


def define_held_out_flag() -> None:
    flags.DEFINE_list(
        "held_out_combinations",
        None,
        "Colour:shape pairs kept out of synthetic training, e.g. "
        "red:star (training: none by default; evaluation: by default those the model's training "
        "held out).",
    )


def define_dataset_flags() -> None:
    """Every flag of the data a model trains on: the source, how validation is split off, the synthetic world."""
    define_source_flags()
    define_held_out_flag()
    flags.DEFINE_list(
        "flickr_split_files", [], "Flickr image lists as split=path, e.g. train=Flickr_8k.trainImages.txt."
    )
    flags.DEFINE_float("val_fraction", 0.05, "Share of images held out for validation when the data has no val split.")
    flags.DEFINE_integer("synthetic_num_images", 8000, "Synthetic dataset size.")
    flags.DEFINE_integer("synthetic_seed", 0, "Synthetic dataset seed (evaluate on another seed).")
    flags.DEFINE_integer(
        "synthetic_max_objects",
        synthetic.MAX_OBJECTS,
        "Most objects in a synthetic scene (1 to 4; 2 is the simpler world of one and two objects).",
    )
    cli.define_flag_validators(
        ("val_fraction", lambda value: 0 <= value < 1, "must be in [0, 1)"),
        ("synthetic_num_images", lambda value: value >= 2, "must be at least 2 (training and validation images)"),
        (
            "synthetic_max_objects",
            lambda value: 1 <= value <= synthetic.MAX_OBJECTS,
            f"must be 1 to {synthetic.MAX_OBJECTS}",
        ),
        (
            "flickr_split_files",
            lambda items: all("=" in item for item in items),
            "takes split=path items, e.g. train=Flickr_8k.trainImages.txt",
        ),
    )


def dataset_source(image_size: int, synthetic_dir: str):
    """-> (format, annotations path, image dir, reader kwargs), writing the synthetic dataset to `synthetic_dir`
    if needed."""
    if FLAGS.dataset == "synthetic":
        held_out = synthetic.parse_combinations(FLAGS.held_out_combinations or [])
        annotations = datasets.ensure_synthetic_dataset(
            synthetic_dir,
            FLAGS.synthetic_num_images,
            FLAGS.synthetic_seed,
            image_size,
            held_out,
            FLAGS.synthetic_max_objects,
        )
        return "coco", annotations, os.path.join(synthetic_dir, "images"), {}
    kwargs = {}
    if FLAGS.flickr_split_files:
        kwargs["split_files"] = dict(item.split("=", 1) for item in FLAGS.flickr_split_files)
    return FLAGS.dataset, FLAGS.annotations, FLAGS.image_dir, kwargs
