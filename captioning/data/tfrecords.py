"""Sharded TFRecords for real-data scale: each record is one image, resized once and stored as JPEG bytes, with
all its captions. Training then reads a few large files in parallel instead of decoding and resizing a full-size
image file per caption.

Layout of a TFRecords directory:
  <split>-00000-of-000NN.tfrecord ...   records {image: bytes, captions: [bytes], image_id: bytes,
                                        object_counts: [float], 4 per object (scene_counts rows), when the source
                                        says what the image's scene holds}
  <split>-captions.txt                  every caption of the split, one a line (the vocabulary is built from it)
  manifest.json                         image size, and per split: files, images, captions, most_objects (the most
                                        objects one record lists; 0 when no record says what its scene holds)

Reading: the shards are interleaved in parallel; across the workers of a multi-worker job each worker reads its
own shards (sharding by file), so no worker decodes another's images.
"""

import dataclasses
import json
import math
import os

import tensorflow as tf

from captioning.data import scene_counts
from captioning.data.images import decode_and_resize
from captioning.data.pipeline import AUTOTUNE, image_key, never_null_image, null_image_draws, to_features
from captioning.data.readers import MAX_SCENE_OBJECTS
from captioning.util import atomic
from captioning.util.errors import InvalidInput

MANIFEST = "manifest.json"
JPEG_QUALITY = 95
_RECORD = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "captions": tf.io.VarLenFeature(tf.string),
    "image_id": tf.io.FixedLenFeature([], tf.string),
    "object_counts": tf.io.VarLenFeature(tf.float32),
}


@dataclasses.dataclass(frozen=True)
class ShardedRecords:
    """One split of a TFRecords directory."""

    directory: str
    split: str
    files: tuple
    num_images: int
    num_captions: int
    image_size: int
    most_objects: int = 0  # what the counting loss reads: 0 when the records say nothing of their scenes

    def captions(self) -> list:
        with open(os.path.join(self.directory, f"{self.split}-captions.txt"), encoding="utf-8") as f:
            return f.read().splitlines()


def _bytes_feature(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _resized_jpegs(paths, image_size):
    """Encoded files -> JPEG bytes of the image resized as training resizes it, decoded in parallel."""

    def resize(path):
        pixels = decode_and_resize(tf.io.read_file(path), image_size)
        return tf.io.encode_jpeg(tf.cast(tf.round(pixels), tf.uint8), quality=JPEG_QUALITY)

    return (
        tf.data.Dataset.from_tensor_slices(paths)
        .map(resize, num_parallel_calls=AUTOTUNE, deterministic=True)
        .prefetch(AUTOTUNE)
    )


def write_split(examples, directory: str, split: str, image_size: int, images_per_shard: int = 1000) -> dict:
    """Writes one split's shards and captions file; returns its manifest entry. Each shard is written under a
    temporary name and renamed into place, so a reader never sees half a shard."""
    captions_of, counts_of = {}, {}
    for example in examples:  # images in first-seen order, each with its captions (newlines would split them)
        key = (example.image_id, example.image_path)
        if key not in captions_of:  # an image's counts once, not once per caption
            counts_of[key] = scene_counts.object_counts(example.objects)
        captions_of.setdefault(key, []).append(" ".join(example.caption.split()))
    images = list(captions_of)
    num_shards = max(1, math.ceil(len(images) / images_per_shard))
    files = [f"{split}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    jpegs = iter(_resized_jpegs([path for _, path in images], image_size))
    for shard, name in enumerate(files):
        with (
            atomic.replaced_on_success(os.path.join(directory, name)) as temporary,
            tf.io.TFRecordWriter(temporary) as writer,
        ):
            for key in images[shard * images_per_shard : (shard + 1) * images_per_shard]:
                features = {
                    "image": _bytes_feature([next(jpegs).numpy()]),
                    "captions": _bytes_feature([c.encode("utf-8") for c in captions_of[key]]),
                    "image_id": _bytes_feature([str(key[0]).encode("utf-8")]),
                }
                if counts_of[key]:
                    features["object_counts"] = tf.train.Feature(
                        float_list=tf.train.FloatList(value=[value for row in counts_of[key] for value in row])
                    )
                writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    atomic.write_text(
        os.path.join(directory, f"{split}-captions.txt"), "".join(f"{c}\n" for key in images for c in captions_of[key])
    )
    return {
        "files": files,
        "images": len(images),
        "captions": sum(map(len, captions_of.values())),
        "most_objects": max(map(len, counts_of.values()), default=0),
    }


def write_tfrecords(splits: dict, directory: str, image_size: int, images_per_shard: int = 1000) -> dict:
    """{split: validated examples} (datasets.load_examples) -> the TFRecords directory; returns its manifest."""
    os.makedirs(directory, exist_ok=True)
    manifest = {
        "image_size": image_size,
        "jpeg_quality": JPEG_QUALITY,
        "splits": {
            split: write_split(examples, directory, split, image_size, images_per_shard)
            for split, examples in splits.items()
            if examples
        },
    }
    atomic.write_text(os.path.join(directory, MANIFEST), json.dumps(manifest, indent=2))
    return manifest


def open_split(directory: str, split: str):
    """The split's ShardedRecords, or None when the directory has no such split. A directory that is not a
    TFRecords directory of this kind is a one-line ValueError."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise InvalidInput(
            f"{directory} is not a TFRecords directory (no {MANIFEST}; write one with scripts/make_tfrecords.py)"
        )
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    entry = manifest["splits"].get(split)
    if not entry:
        return None
    missing = [name for name in entry["files"] if not os.path.isfile(os.path.join(directory, name))]
    if missing:
        raise InvalidInput(f"{directory}: shard {missing[0]} named in {MANIFEST} is missing")
    most_objects = entry.get("most_objects", 0)
    # Every example is padded to it: a crafted manifest could ask for gigabytes per image.
    if not (isinstance(most_objects, int) and 0 <= most_objects <= MAX_SCENE_OBJECTS):
        raise InvalidInput(
            f"{directory}: {MANIFEST} gives {split} most_objects {most_objects!r}; a record lists 0 to "
            f"{MAX_SCENE_OBJECTS} objects"
        )
    return ShardedRecords(
        directory,
        split,
        tuple(os.path.join(directory, name) for name in entry["files"]),
        entry["images"],
        entry["captions"],
        manifest["image_size"],
        most_objects,
    )


def _pairs(records: tf.data.Dataset, image_size: int, most_objects: int) -> tf.data.Dataset:
    """Serialized records -> (pixels, image key, caption, object counts [most_objects, 4], zero-padded), one per
    caption; each image is decoded once."""

    def parse(serialized):
        example = tf.io.parse_single_example(serialized, _RECORD)
        values, width = tf.sparse.to_dense(example["object_counts"]), scene_counts.ROW_WIDTH
        # Rows that do not fit the manifest (a record written by other means) cost the image its counts, not the run.
        fits = (tf.size(values) % width == 0) & (tf.size(values) <= most_objects * width)
        counts = tf.reshape(tf.cond(fits, lambda: values, lambda: values[:0]), [-1, width])
        counts = tf.pad(counts, [[0, most_objects - tf.shape(counts)[0]], [0, 0]])
        return (
            decode_and_resize(example["image"], image_size),
            image_key(example["image_id"]),
            tf.sparse.to_dense(example["captions"]),
            tf.ensure_shape(counts, [most_objects, None]),
        )

    def per_caption(pixels, key, captions, counts):
        return tf.data.Dataset.from_tensor_slices(captions).map(lambda caption: (pixels, key, caption, counts))

    parsed = records.map(parse, num_parallel_calls=AUTOTUNE, deterministic=True)
    return parsed.flat_map(per_caption)


def training_dataset(
    records: ShardedRecords,
    tokenizer,
    image_size: int,
    global_batch_size: int,
    seed: int,
    image_dropout: float,
    start_step: int,
    context: tf.distribute.InputContext,
    shuffle_buffer: int = 4096,
) -> tf.data.Dataset:
    """An endless, shuffled stream of this input pipeline's batches (`strategy.distribute_datasets_from_function`
    gives the context): it reads every n-th shard of n pipelines, interleaving them in parallel, and resuming at
    `start_step` skips what this pipeline consumed before."""
    if len(records.files) < context.num_input_pipelines:
        raise InvalidInput(
            f"{records.directory}: {len(records.files)} {records.split} shard(s) for "
            f"{context.num_input_pipelines} workers; write at least one shard per worker "
            "(scripts/make_tfrecords.py --images_per_shard)"
        )
    batch_size = context.get_per_replica_batch_size(global_batch_size)
    files = tf.data.Dataset.from_tensor_slices(list(records.files)).shard(
        context.num_input_pipelines, context.input_pipeline_id
    )
    files = files.shuffle(len(records.files), seed=seed, reshuffle_each_iteration=True).repeat()
    serialized = files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(records.files), 8),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    pairs = _pairs(serialized, image_size, records.most_objects).shuffle(shuffle_buffer, seed=seed)
    # Number every example of every pipeline differently, so image dropout draws differ between workers.
    numbered = pairs.enumerate().map(
        lambda i, pair: (
            *pair[:3],
            i * context.num_input_pipelines + context.input_pipeline_id,
            {"object_counts": pair[3]} if records.most_objects else {},
        )
    )
    per_worker_step = batch_size * context.num_replicas_in_sync // context.num_input_pipelines
    dataset = numbered.skip(start_step * per_worker_step).batch(batch_size, drop_remainder=True)
    return dataset.map(
        to_features(tokenizer, null_image_draws(seed, image_dropout)), num_parallel_calls=AUTOTUNE
    ).prefetch(AUTOTUNE)


def evaluation_dataset(records: ShardedRecords, tokenizer, image_size: int, global_batch_size: int):
    """Every caption of the split once, always with its real image. Every worker reads all shards and
    tf.distribute splits the batches between them (sharding by data), as for per-file reads."""
    pairs = _pairs(tf.data.TFRecordDataset(list(records.files)), image_size, records.most_objects)
    numbered = pairs.enumerate().map(lambda i, pair: (*pair[:3], i))
    dataset = numbered.batch(global_batch_size).map(to_features(tokenizer, never_null_image)).prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
