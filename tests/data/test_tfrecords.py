"""TFRecords: every caption comes back with (nearly) the pixels the per-file path reads, workers read disjoint
shards, bad directories fail in one line, and train.py's code path trains from them."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from captioning.data import pipeline, scene_counts, tfrecords
from captioning.data.examples import CaptionExample
from captioning.data.text import Tokenizer, Vocabulary
from tests.helpers import CHILD_TIMEOUT, TINY_MODEL, TINY_TRAINING, synthetic_dataset, write_image

SIZE = 32


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """Eight solid-colour 48px images, two captions each; the number word names the image."""
    directory = tmp_path_factory.mktemp("images")
    rows = []
    for k in range(8):
        path = write_image(directory / f"{k}.png", size=(48, 48), color=(30 * k, 255 - 30 * k, 90))
        rows += [
            CaptionExample(path, f"picture number {k}", str(k), "train"),
            CaptionExample(path, f"a coloured square {k}", str(k), "train"),
        ]
    return rows


@pytest.fixture(scope="module")
def records(examples, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("records"))
    manifest = tfrecords.write_tfrecords({"train": examples}, directory, SIZE, images_per_shard=2)
    assert manifest["splits"]["train"] == {
        "files": [f"train-0000{i}-of-00004.tfrecord" for i in range(4)],
        "images": 8,
        "captions": 16,
        "most_objects": 0,
    }
    return tfrecords.open_split(directory, "train")


def tokenizer_for(examples):
    vocabulary = Vocabulary.build([e.caption for e in examples])
    return Tokenizer(vocabulary, 8), vocabulary


def test_records_give_every_caption_with_the_pixels_of_the_image_file(examples, records):
    tokenizer, _ = tokenizer_for(examples)
    assert records.captions() == [e.caption for e in examples]
    from_records = list(tfrecords.evaluation_dataset(records, tokenizer, SIZE, 16))[0]
    from_files = list(pipeline.evaluation_dataset(examples, tokenizer, SIZE, 16))[0]
    np.testing.assert_array_equal(from_records["input_ids"], from_files["input_ids"])
    np.testing.assert_allclose(from_records["images"], from_files["images"], atol=4)  # JPEG quality 95


def number_words(batches, vocabulary):
    words = [vocabulary.tokens[i] for batch in batches for i in batch["input_ids"].numpy().ravel()]
    return {w for w in words if w.isdigit()}


def test_each_worker_reads_its_own_shards(examples, records):
    tokenizer, vocabulary = tokenizer_for(examples)
    seen = []
    for worker in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker, num_replicas_in_sync=2)
        dataset = tfrecords.training_dataset(
            records, tokenizer, SIZE, 4, seed=0, image_dropout=0.0, start_step=0, context=context, shuffle_buffer=4
        )
        batches = list(dataset.take(8))  # two per-replica examples a batch: 16 = two passes over its 8 captions
        assert all(batch["images"].shape[0] == 2 for batch in batches)
        seen.append(number_words(batches, vocabulary))
    assert seen[0] == {"0", "1", "4", "5"} and seen[1] == {"2", "3", "6", "7"}  # shards 0, 2 and 1, 3


def test_too_few_shards_or_no_manifest_is_a_one_line_error(examples, records, tmp_path):
    context = tf.distribute.InputContext(num_input_pipelines=5, input_pipeline_id=0, num_replicas_in_sync=5)
    with pytest.raises(ValueError, match="4 train shard\\(s\\) for 5 workers"):
        tfrecords.training_dataset(records, tokenizer_for(examples)[0], SIZE, 5, 0, 0.0, 0, context)
    with pytest.raises(ValueError, match="is not a TFRecords directory"):
        tfrecords.open_split(str(tmp_path), "train")
    assert tfrecords.open_split(records.directory, "val") is None


def test_training_reads_tfrecords_end_to_end(records, tmp_path):
    from captioning.training.run import run_training

    lines = []
    training = dataclasses.replace(TINY_TRAINING, global_batch_size=4, steps_per_loop=2)
    assert (
        run_training(
            TINY_MODEL,
            training,
            None,
            None,
            None,
            str(tmp_path),
            max_steps=4,
            log=lines.append,
            tfrecord_dir=records.directory,
        )
        is None
    )
    assert "16 training and 0 validation captions" in lines and "stopped at step 4 of 12; run again to resume" in lines
    assert "number" in Vocabulary.load(str(tmp_path / "ckpt" / "vocabulary.txt")).tokens
    assert any(line.startswith("no counting loss: these TFRecords say nothing of their scenes") for line in lines)


def test_records_of_scenes_carry_what_each_image_holds_and_train_the_counting_loss(tmp_path):
    from captioning.data.readers import read_coco
    from captioning.training.loop import Trainer

    examples = read_coco(synthetic_dataset(tmp_path / "data", num_images=12), str(tmp_path / "data" / "images"))
    tfrecords.write_tfrecords({"train": examples}, str(tmp_path / "records"), SIZE, images_per_shard=5)
    records = tfrecords.open_split(str(tmp_path / "records"), "train")
    expected = scene_counts.counts_array(examples)
    assert records.most_objects == expected.shape[1] > 1
    row_of = {int(pipeline.image_key(tf.constant(e.image_id))): row for row, e in enumerate(examples)}
    tokenizer, vocabulary = tokenizer_for(examples)
    batch = next(
        iter(tfrecords.training_dataset(records, tokenizer, SIZE, 16, 0, 0.0, 0, tf.distribute.InputContext()))
    )
    for key, counts in zip(batch["image_keys"].numpy(), batch["object_counts"].numpy()):
        np.testing.assert_array_equal(counts, expected[row_of[int(key)]])

    config = dataclasses.replace(TINY_MODEL, vocab_size=len(vocabulary))
    lines = []
    Trainer(config, dataclasses.replace(TINY_TRAINING, log_every_steps=2), vocabulary, str(tmp_path / "run")).fit(
        records, None, max_steps=2, log=lines.append
    )
    losses = [float(line.split("count_loss ")[1].split()[0]) for line in lines if "count_loss" in line]
    assert losses and min(losses) > 0, lines


def test_the_conversion_tool_writes_a_directory_training_reads_and_refuses_bad_input(tmp_path):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tool = [sys.executable, "scripts/make_tfrecords.py", "--output_dir", str(tmp_path / "records")]
    result = subprocess.run(
        tool + ["--synthetic_num_images", "12", "--image_size", "16", "--images_per_shard", "5"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    train = tfrecords.open_split(str(tmp_path / "records"), "train")
    assert train.image_size == 16 and len(train.files) >= 2 and len(train.captions()) == train.num_captions
    result = subprocess.run(
        tool + ["--dataset", "csv", "--annotations", str(tmp_path / "absent.csv")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.returncode == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


def test_counting_rows_that_do_not_fit_the_manifest_cost_their_image_its_counts_only(tmp_path):
    """An attack on the reader: records written by other means, whose rows are cut short or outnumber the
    manifest's most_objects, would fail the reshape or the padding mid-run; a manifest's most_objects beyond any
    scene would pad every example to it."""
    import json

    image = open(write_image(tmp_path / "a.png"), "rb").read()
    rows = {"good": [0.5, 0.5, 1, 1], "cut_short": [0.5, 0.5, 1], "too_many": [0.5, 0.5, 1, 1] * 3}
    with tf.io.TFRecordWriter(str(tmp_path / "train-00000-of-00001.tfrecord")) as writer:
        for name, values in rows.items():
            features = {
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
                "captions": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a red square"])),
                "image_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode()])),
                "object_counts": tf.train.Feature(float_list=tf.train.FloatList(value=values)),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    (tmp_path / "train-captions.txt").write_text("a red square\n" * 3)
    (tmp_path / tfrecords.MANIFEST).write_text(
        json.dumps(
            {
                "image_size": SIZE,
                "splits": {
                    "train": {"files": ["train-00000-of-00001.tfrecord"], "images": 3, "captions": 3, "most_objects": 2}
                },
            }
        )
    )
    records = tfrecords.open_split(str(tmp_path), "train")
    manifest = json.loads((tmp_path / tfrecords.MANIFEST).read_text())
    for most_objects in (10**9, -1, "2"):  # every example is padded to it: 10**9 would be 16 GB an image
        manifest["splits"]["train"]["most_objects"] = most_objects
        (tmp_path / tfrecords.MANIFEST).write_text(json.dumps(manifest))
        with pytest.raises(ValueError, match=f"most_objects {most_objects!r}; a record lists 0 to 32 objects"):
            tfrecords.open_split(str(tmp_path), "train")
    tokenizer, _ = tokenizer_for([CaptionExample("a.png", "a red square", "a")])
    batch = next(iter(tfrecords.training_dataset(records, tokenizer, SIZE, 3, 0, 0.0, 0, tf.distribute.InputContext())))
    counts = dict(zip(batch["image_keys"].numpy(), batch["object_counts"].numpy()))
    for name in rows:
        expected = [[0.5, 0.5, 1, 1], [0, 0, 0, 0]] if name == "good" else np.zeros((2, 4))
        np.testing.assert_array_equal(counts[int(pipeline.image_key(tf.constant(name)))], expected, err_msg=name)
