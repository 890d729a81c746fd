"""The synthetic world written out as datasets: a COCO captions folder for training and evaluation, and a pairs
CSV for the batch-scoring benchmarks."""

import csv
import dataclasses
import json
import os

import numpy as np

from captioning.data import synthetic
from captioning.data.scene_captions import describe_scene
from captioning.util import atomic

# Bumped whenever the same seed would draw other scenes or captions, so a cached dataset is not reused.
WORLD_VERSION = 2


def dataset_info(num_images: int, seed: int, image_size: int, held_out=(), max_objects: int = synthetic.MAX_OBJECTS):
    """What names a written dataset: the same info means the same images and captions."""
    return {
        "world_version": WORLD_VERSION,
        "seed": seed,
        "num_images": num_images,
        "image_size": image_size,
        "held_out": [list(c) for c in held_out],
        "max_objects": max_objects,
    }


def write_coco_dataset(
    output_dir: str,
    num_images: int,
    seed: int,
    image_size: int = 64,
    held_out=(),
    captions_per_image: int = 5,
    max_objects: int = synthetic.MAX_OBJECTS,
) -> str:
    """Writes `output_dir/images/*.png` and `output_dir/annotations/captions.json` (COCO captions format,
    with each image's scene kept under a `scene` key for evaluation); returns the annotations path."""
    os.makedirs(os.path.join(output_dir, "images"), exist_ok=True)
    os.makedirs(os.path.join(output_dir, "annotations"), exist_ok=True)
    caption_rng = np.random.default_rng([seed, 1])
    images, annotations = [], []
    for image_id, scene in enumerate(synthetic.generate_scenes(num_images, seed, held_out, max_objects=max_objects)):
        file_name = f"{image_id:06d}.png"
        synthetic.render_scene(scene, image_size).save(os.path.join(output_dir, "images", file_name))
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": image_size,
                "height": image_size,
                "scene": dataclasses.asdict(scene),
            }
        )
        for caption in describe_scene(scene, caption_rng, captions_per_image):
            annotations.append({"id": len(annotations), "image_id": image_id, "caption": caption})
    info = {"description": "synthetic scenes", **dataset_info(num_images, seed, image_size, held_out, max_objects)}
    path = os.path.join(output_dir, "annotations", "captions.json")
    # The annotations file appears only once every image is written.
    atomic.write_text(path, json.dumps({"info": info, "images": images, "annotations": annotations}))
    return path


def write_pairs_csv(directory: str, rows: int, images: int, pixels: int, seed: int = 2024) -> str:
    """A pairs CSV for the batch-scoring benchmarks: `images` synthetic scenes as JPEG files (images/NNNN.jpg)
    and `rows` rows cycling through them, each with a different phrasing of its scene; image paths are
    relative to the CSV. Returns the CSV's path."""
    os.makedirs(os.path.join(directory, "images"), exist_ok=True)
    scenes = synthetic.generate_scenes(images, seed)
    rng = np.random.default_rng(seed)
    captions = [describe_scene(scene, rng, 8) for scene in scenes]
    for i, scene in enumerate(scenes):
        synthetic.render_scene(scene, pixels).save(os.path.join(directory, "images", f"{i:04d}.jpg"), quality=90)
    path = os.path.join(directory, "pairs.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image_path", "caption"])
        for row in range(rows):
            image = row % images
            writer.writerow([f"images/{image:04d}.jpg", captions[image][(row // images) % len(captions[image])]])
    return path
