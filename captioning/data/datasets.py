"""From "which dataset" to validated train/validation examples: the one entry point train.py and evaluation use."""

import json
import os

from captioning.data import readers, synthetic, synthetic_dataset
from captioning.data.validation import require_usable, validate_examples

FORMATS = ("synthetic", "coco", "karpathy", "flickr", "csv")


def ensure_synthetic_dataset(
    data_dir: str, num_images: int, seed: int, image_size: int, held_out=(), max_objects: int = synthetic.MAX_OBJECTS
) -> str:
    """Writes the synthetic dataset in COCO format unless the same one is already there; returns the
    annotations path (so the synthetic data takes the real-data path from here on)."""
    annotations = os.path.join(data_dir, "annotations", "captions.json")
    wanted = synthetic_dataset.dataset_info(num_images, seed, image_size, held_out, max_objects)
    if os.path.exists(annotations):
        with open(annotations, encoding="utf-8") as f:
            info = json.load(f).get("info", {})
        if all(info.get(k) == v for k, v in wanted.items()):
            return annotations
    return synthetic_dataset.write_coco_dataset(
        data_dir, num_images, seed, image_size, held_out, max_objects=max_objects
    )


def load_examples(
    format: str, annotations_path: str, image_dir: str = None, val_fraction: float = 0.05, log=print, **reader_kwargs
) -> dict:
    """-> {"train": [...], "val": [...], "test": [...]} of usable examples; bad rows are skipped and counted in one
    line, and a dataset with nothing usable for training raises NoUsableExamplesError."""
    examples = readers.read_dataset(format, annotations_path, image_dir, **reader_kwargs)
    examples, report = validate_examples(examples)
    log(report.summary())
    splits = readers.group_by_split(readers.assign_validation_split(examples, fraction=val_fraction))
    require_usable(splits.get("train", []), report, "training")
    return splits
