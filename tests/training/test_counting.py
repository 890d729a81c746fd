"""The counting loss: its targets, its loss, where it is on and off, and a run that trains it."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from captioning.data import scene_counts
from captioning.data.examples import CaptionExample
from captioning.training import counting
from tests.helpers import TINY_MODEL, TINY_TRAINING, synthetic_dataset, train_model

# Two red stars, a blue star and a green circle.
SCENE = (
    ("star", "red", 0.1, 0.9),
    ("star", "red", 0.6, 0.2),
    ("star", "blue", 0.9, 0.9),
    ("circle", "green", 0.4, 0.4),
)


def test_each_object_counts_its_shape_and_its_shape_and_colour():
    assert scene_counts.object_counts(SCENE) == [[0.1, 0.9, 3, 2], [0.6, 0.2, 3, 2], [0.9, 0.9, 3, 1], [0.4, 0.4, 1, 1]]


def test_counts_land_on_the_cell_of_each_centre_row_by_row():
    counts = tf.constant([scene_counts.object_counts(SCENE)], tf.float32)
    targets = counting.cell_targets(counts, (4, 4)).numpy()[0]  # 4 x 4 cells, numbered row by row
    expected = np.zeros((16, 2), np.int32)
    expected[3 * 4 + 0] = [3, 2]  # x 0.1, y 0.9: bottom row, first column
    expected[0 * 4 + 2] = [3, 2]
    expected[3 * 4 + 3] = [3, 1]  # x 0.9 and y 0.9 (and 1.0 would be the same): the last cell
    expected[1 * 4 + 1] = [1, 1]
    np.testing.assert_array_equal(targets, expected)
    # Another grid puts them elsewhere: the grid is the encoder's, not a constant.
    assert counting.cell_targets(counts, (2, 3)).numpy()[0, 1 * 3 + 0].tolist() == [3, 2]


def test_counts_past_the_largest_class_are_named_by_it():
    crowd = tuple(("star", "red", 0.1 * i, 0.5) for i in range(1, 7))  # six red stars
    targets = counting.cell_targets(tf.constant([scene_counts.object_counts(crowd)], tf.float32), (8, 8)).numpy()
    assert targets.max() == counting.MAX_COUNT


def test_examples_without_a_scene_give_zero_rows_and_none_at_all_give_no_array():
    examples = [CaptionExample("a.png", "x", "a", objects=SCENE[:2]), CaptionExample("b.png", "y", "b")]
    array = scene_counts.counts_array(examples)
    assert array.shape == (2, 2, 4)
    assert array[1].tolist() == [[0] * 4] * 2
    assert scene_counts.counts_array(examples[1:]) is None


def one_hot_logits(targets, confidence=20.0):
    """Logits [B, cells, 10] that name `targets` [B, cells, 2] with the given margin."""
    classes = counting.MAX_COUNT + 1
    return tf.concat([confidence * tf.one_hot(targets[..., i], classes) for i in range(2)], axis=-1)


def test_the_loss_is_near_zero_when_right_and_an_object_cell_costs_more_than_an_empty_one():
    counts = tf.constant([scene_counts.object_counts(SCENE)], tf.float32)
    targets = counting.cell_targets(counts, (4, 4))
    right = one_hot_logits(targets)
    assert float(counting.count_loss_sum(right, counts, (4, 4))) < 1e-3

    def wrong_at(cell):
        wrong = targets.numpy().copy()
        wrong[0, cell] = (wrong[0, cell] + 1) % (counting.MAX_COUNT + 1)
        return float(counting.count_loss_sum(one_hot_logits(tf.constant(wrong)), counts, (4, 4)))

    object_cell, empty_cell = 3 * 4 + 0, 0
    assert wrong_at(object_cell) == pytest.approx(counting.OBJECT_CELL_WEIGHT * wrong_at(empty_cell), rel=1e-4)
    # Both counts off by 20 in one cell, over the weights of 4 object cells and 12 empty ones.
    assert wrong_at(empty_cell) == pytest.approx(2 * 20 / (4 * counting.OBJECT_CELL_WEIGHT + 12), rel=1e-4)


def test_images_without_a_scene_add_nothing_and_the_loss_sums_over_images():
    counts = tf.constant([scene_counts.object_counts(SCENE), [[0.0] * 4] * 4], tf.float32)
    uniform = tf.zeros((2, 16, 10))
    one = float(counting.count_loss_sum(uniform[:1], counts[:1], (4, 4)))
    assert one == pytest.approx(2 * np.log(counting.MAX_COUNT + 1), rel=1e-5)  # two 5-way guesses per cell
    assert float(counting.count_loss_sum(uniform, counts, (4, 4))) == pytest.approx(one, rel=1e-6)


def test_it_is_off_without_a_context_or_scenes_in_examples_or_tfrecords(tmp_path):
    from captioning.data.tfrecords import ShardedRecords

    with_scene = [CaptionExample("a.png", "x", "a", objects=SCENE)]
    assert counting.off_reason(4, with_scene) == ""
    assert "--context_heads 0" in counting.off_reason(0, with_scene)
    assert "says what its scene holds" in counting.off_reason(4, [CaptionExample("a.png", "x", "a")])
    records = ShardedRecords("d", "train", ("d/train-00000-of-00001.tfrecord",), 1, 1, 32)
    assert "these TFRecords say nothing of their scenes" in counting.off_reason(4, records)
    assert counting.off_reason(4, dataclasses.replace(records, most_objects=3)) == ""


def test_a_coco_scene_becomes_the_examples_objects_and_a_broken_one_none(tmp_path):
    from captioning.data.readers import read_coco

    objects = [{"color": "red", "shape": "star", "size": "small", "x": 0.25, "y": 0.75}]
    images = [
        {"id": 1, "file_name": "1.png", "scene": {"objects": objects}},
        {"id": 2, "file_name": "2.png", "scene": {"objects": [{"shape": "star"}]}},
        {"id": 3, "file_name": "3.png", "scene": {"objects": [{**objects[0], "x": float("nan")}]}},
        {"id": 4, "file_name": "4.png"},
        # A crafted scene of 100,000 objects would cost 10^10 comparisons and pad every image to its size.
        {"id": 5, "file_name": "5.png", "scene": {"objects": objects * 100_000}},
    ]
    path = tmp_path / "captions.json"
    path.write_text(
        json.dumps(
            {"images": images, "annotations": [{"image_id": i, "caption": "a red star"} for i in (1, 2, 3, 4, 5)]}
        )
    )
    examples = read_coco(str(path), str(tmp_path))
    assert [e.objects for e in examples] == [(("star", "red", 0.25, 0.75),), (), (), (), ()]


LONGER_TRAINING = dataclasses.replace(TINY_TRAINING, steps_per_epoch=24, checkpoint_every_steps=12)


def test_a_run_trains_the_counting_loss_down_and_checkpoints_its_head(tmp_path):
    from captioning.data.readers import read_coco
    from captioning.data.text import Vocabulary
    from captioning.training.loop import Trainer

    annotations = synthetic_dataset(tmp_path / "data", num_images=40)
    examples = read_coco(annotations, str(tmp_path / "data" / "images"))
    vocabulary = Vocabulary.build([e.caption for e in examples])
    config = dataclasses.replace(TINY_MODEL, vocab_size=len(vocabulary))
    lines = []
    trainer = Trainer(
        config, dataclasses.replace(LONGER_TRAINING, log_every_steps=4), vocabulary, str(tmp_path / "run")
    )
    trainer.fit(examples, [], log=lines.append)
    losses = [float(line.split("count_loss ")[1].split()[0]) for line in lines if "count_loss" in line]
    assert len(losses) == 6 and losses[-1] < 0.9 * losses[0], lines

    resumed = Trainer(config, LONGER_TRAINING, vocabulary, str(tmp_path / "run"))
    assert resumed.restore() == 24
    for trained, restored in zip(trainer.count_head.weights, resumed.count_head.weights):
        np.testing.assert_array_equal(trained.numpy(), restored.numpy())


def test_train_py_says_in_one_line_why_it_trains_no_counting_loss(tmp_path):
    lines = []
    train_model(
        tmp_path,
        dataclasses.replace(TINY_MODEL, context_heads=0),
        dataclasses.replace(TINY_TRAINING, steps_per_epoch=2),
        num_images=8,
        export=False,
        log=lines.append,
    )
    assert "no counting loss: the model has no cell context to train (--context_heads 0)" in lines


def test_resuming_a_run_begun_without_the_counting_loss_says_how_to_go_on(tmp_path):
    from captioning.data.readers import read_coco
    from captioning.data.text import Vocabulary
    from captioning.training.loop import Trainer

    annotations = synthetic_dataset(tmp_path / "data", num_images=20)
    examples = read_coco(annotations, str(tmp_path / "data" / "images"))
    vocabulary = Vocabulary.build([e.caption for e in examples])
    config = dataclasses.replace(TINY_MODEL, vocab_size=len(vocabulary))
    without = dataclasses.replace(TINY_TRAINING, count_loss_weight=0.0)
    Trainer(config, without, vocabulary, str(tmp_path / "run")).fit(examples, [], max_steps=6, log=lambda *_: None)
    with pytest.raises(ValueError, match="trained without the counting loss: resume it with --count_loss_weight 0"):
        Trainer(config, TINY_TRAINING, vocabulary, str(tmp_path / "run")).restore()
    assert Trainer(config, without, vocabulary, str(tmp_path / "run")).restore() == 6  # as it began: it resumes
