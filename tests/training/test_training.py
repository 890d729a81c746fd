"""Training: the loss falls, one replica equals two, interrupted runs resume, bad data fails clearly."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from captioning.data.validation import NoUsableExamplesError
from tests.helpers import (
    CHILD_TIMEOUT,
    RERUN_ON_TF_CRASH,
    TINY_MODEL,
    TINY_TRAIN_FLAGS,
    TINY_TRAINING,
    assert_processes,
    output_report,
    synthetic_dataset,
    train_model,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_loss_falls_over_a_few_steps(tmp_path):
    from captioning.data.readers import read_coco
    from captioning.data.text import Vocabulary
    from captioning.training.loop import Trainer

    annotations = synthetic_dataset(tmp_path / "data", num_images=30)
    examples = read_coco(annotations, str(tmp_path / "data" / "images"))
    vocabulary = Vocabulary.build([e.caption for e in examples])
    config = dataclasses.replace(TINY_MODEL, vocab_size=len(vocabulary))
    trainer = Trainer(config, TINY_TRAINING, vocabulary, str(tmp_path / "run"))
    before = trainer.evaluate(examples)["loss"]
    trainer.fit(examples, [], log=lambda *_: None)
    after = trainer.evaluate(examples)["loss"]
    assert after < before - 0.5, (before, after)


def test_several_steps_per_call_train_the_same_weights(tmp_path):
    from captioning.data.readers import read_coco
    from captioning.data.text import Vocabulary
    from captioning.training.loop import Trainer

    annotations = synthetic_dataset(tmp_path / "data", num_images=20)
    examples = read_coco(annotations, str(tmp_path / "data" / "images"))
    vocabulary = Vocabulary.build([e.caption for e in examples])
    config = dataclasses.replace(TINY_MODEL, vocab_size=len(vocabulary))
    weights = {}
    for steps_per_loop in (1, 5):  # 5: calls of 5, 1 (up to the checkpoint at 6) and 2 steps
        training = dataclasses.replace(
            TINY_TRAINING, steps_per_epoch=8, checkpoint_every_steps=6, steps_per_loop=steps_per_loop
        )
        run_dir = tmp_path / f"run{steps_per_loop}"
        trainer = Trainer(config, training, vocabulary, str(run_dir))
        trainer.fit(examples, [], log=lambda *_: None)
        assert int(trainer.step.numpy()) == 8
        assert {"ckpt-6.index", "ckpt-8.index"} <= set(os.listdir(run_dir / "ckpt"))
        weights[steps_per_loop] = [w.numpy() for w in trainer.model.weights]
    for a, b in zip(weights[1], weights[5]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert logged_steps(tmp_path / "run5" / "logs" / "train", "loss") == list(range(1, 9))  # every step, in-graph


def logged_steps(log_dir, tag):
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    events = [
        event_pb2.Event.FromString(record.numpy())
        for path in sorted(log_dir.iterdir())
        for record in tf.data.TFRecordDataset(str(path))
    ]
    return sorted(event.step for event in events for value in event.summary.value if value.tag == tag)


def test_a_run_writes_the_model_its_metadata_and_training_curves(tiny_run_dir):
    with open(os.path.join(tiny_run_dir, "training_metadata.json")) as f:
        metadata = json.load(f)
    assert metadata["steps"] == TINY_TRAINING.total_steps and metadata["replicas"] == 1
    assert {"val_loss", "train_loss"} <= set(metadata["history"][-1])
    for name in ("config.json", "vocabulary.txt", "model.weights.h5", "training_curves.png", "export/1/saved_model.pb"):
        assert os.path.getsize(os.path.join(tiny_run_dir, name)) > 0, name
    assert not [n for n in os.listdir(tiny_run_dir) if ".tmp" in n]


def test_a_checkpoint_restored_into_a_bare_model_equals_the_trained_one(tiny_run_dir, tiny_model):
    import tensorflow as tf

    from captioning.model.captioner import Captioner
    from captioning.model.config import ModelConfig

    bare = Captioner(ModelConfig.load(os.path.join(tiny_run_dir, "config.json")))
    latest = tf.train.latest_checkpoint(os.path.join(tiny_run_dir, "ckpt"))
    tf.train.Checkpoint(model=bare.variables_by_path()).read(latest).expect_partial().assert_existing_objects_matched()
    trained, _ = tiny_model
    assert len(bare.weights) == len(trained.weights)
    for restored, saved in zip(bare.weights, trained.weights):  # every layer, the small CNN's among them
        np.testing.assert_array_equal(restored.numpy(), saved.numpy(), err_msg=restored.path)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    config = dataclasses.replace(TINY_TRAINING, steps_per_epoch=6, epochs=2, checkpoint_every_steps=4)
    from captioning.training.artifacts import load_trained_model

    train_model(tmp_path / "straight", training_config=config, num_images=30, export=False)  # weights suffice
    assert train_model(tmp_path / "resumed", training_config=config, num_images=30, max_steps=5) is None
    assert os.path.exists(tmp_path / "resumed" / "ckpt" / "ckpt-5.index")
    logs = []
    from captioning.training.run import run_training

    run_training(
        TINY_MODEL,
        config,
        "coco",
        str(tmp_path / "resumed" / "data" / "annotations" / "captions.json"),
        str(tmp_path / "resumed" / "data" / "images"),
        str(tmp_path / "resumed"),
        log=logs.append,
        export=False,
    )
    assert "resumed from checkpoint at step 5" in logs
    straight, _ = load_trained_model(str(tmp_path / "straight"))
    resumed, _ = load_trained_model(str(tmp_path / "resumed"))
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)


def test_kill_9_then_the_same_command_resumes(tmp_path):
    command = [
        sys.executable,
        "train.py",
        "--output_dir",
        str(tmp_path),
        *TINY_TRAIN_FLAGS,
        "--image_size",
        "32",
        "--epochs",
        "1",
        "--steps_per_epoch",
        "400",
        "--checkpoint_every",
        "2",
    ]
    log_path = tmp_path / "first_run.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    checkpoint_state = tmp_path / "ckpt" / "checkpoint"
    deadline = time.time() + CHILD_TIMEOUT
    while not checkpoint_state.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint_state.exists(), "no checkpoint was written before the kill:\n" + output_report(
        log_path.read_text()
    )
    result = subprocess.run(
        command[:-4]
        + ["--steps_per_epoch", "400", "--max_steps", "1", "--checkpoint_every", "2"]
        + ["--hard_negatives_every", "1", "--hard_negatives_scenes", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.returncode == 0, output_report(result.stderr)
    assert "resumed from checkpoint at step" in result.stdout
    # The time-to-quality curve: measured at the run's last checkpoint, logged and kept.
    assert re.search(r"hard negatives at step \d+ \(4 scenes of seed 2024\): \w+ [\d.]+", result.stdout)
    assert (tmp_path / "ckpt" / "hard_negatives.json").exists()


def test_training_with_no_usable_rows_fails_clearly(tmp_path):
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("image_path,caption\nmissing.png,a red circle\n")
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--dataset",
            "csv",
            "--annotations",
            str(csv_path),
            "--output_dir",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.returncode == 2
    assert "error: no usable examples for training: kept 0 of 1 rows; skipped 1: 1 missing image" in result.stderr


REPLICA_CHECK = """
import sys, json, tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from captioning.data.pipeline import training_dataset
from captioning.data.scene_counts import counts_array
from captioning.training.loop import Trainer
from captioning.data.readers import read_coco
from captioning.data.text import Vocabulary
from tests.helpers import TINY_MODEL, TINY_TRAINING
import dataclasses
examples = read_coco(sys.argv[1], sys.argv[2])
vocabulary = Vocabulary.build([e.caption for e in examples])
config = dataclasses.replace(TINY_MODEL, vocab_size=len(vocabulary))
results = {}
for devices in (["/cpu:0"], ["/cpu:0", "/cpu:1"]):
    keras.utils.set_random_seed(1)
    strategy = tf.distribute.MirroredStrategy(devices)
    trainer = Trainer(config, TINY_TRAINING, vocabulary, sys.argv[3] + str(len(devices)), strategy)
    dataset = training_dataset(examples, trainer.tokenizer, config.image_size, 8, 0, 0.25,
                               extras={"object_counts": counts_array(examples)})
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    @tf.function
    def first_gradients(batch):  # what apply_gradients receives: the replicas' gradients summed
        gradients, _ = strategy.run(trainer._replica_gradients, args=(batch,))
        return [tf.convert_to_tensor(strategy.reduce("sum", g, axis=None)) for g in gradients]  # dense embeddings

    gradients = first_gradients(next(iter(strategy.experimental_distribute_dataset(dataset))))
    steps = [[float(v) for v in trainer._train_step(iterator)] for _ in range(3)]
    results[len(devices)] = {"losses": [s[0] for s in steps], "contrastive": [s[2] for s in steps],
                             "count": [s[3] for s in steps],
                             "gradients": {w.path: g.numpy().ravel()[:64].tolist()
                                           for w, g in zip(trainer.trained_variables, gradients)},
                             "weight_sum": float(sum(tf.reduce_sum(tf.abs(w)) for w in trainer.model.weights))}
print(json.dumps(results))
"""


@RERUN_ON_TF_CRASH
def test_one_replica_and_two_give_the_same_losses(tmp_path):
    annotations = synthetic_dataset(tmp_path / "data", num_images=20)
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "faulthandler",
            "-c",
            REPLICA_CHECK,
            annotations,
            str(tmp_path / "data" / "images"),
            str(tmp_path / "run"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert_processes(result.returncode == 0, result.stderr)
    results = json.loads(result.stdout.strip().splitlines()[-1])
    one, two = results["1"], results["2"]
    # The first two steps run on identical weights (warm-up starts the learning rate at 0). The contrastive loss
    # of two replicas sees the negatives of both (gathered), so it equals one device's on the global batch.
    np.testing.assert_allclose(one["losses"][:2], two["losses"][:2], rtol=1e-5)
    np.testing.assert_allclose(one["contrastive"][:2], two["contrastive"][:2], rtol=1e-5)
    np.testing.assert_allclose(one["count"], two["count"], rtol=1e-5)  # each replica's images, over the global batch
    assert min(one["count"]) > 0
    # So do the gradients, the contrastive head's among them (each replica's loss reaches the other's embeddings),
    # and the counting head's.
    assert any("contrastive" in path for path in one["gradients"])
    assert any("count_head" in path for path in one["gradients"])
    # Summing a batch in another order moves each element by rounding on the scale of the tensor's terms, not of
    # the element itself: a near-zero bias gradient beside large ones may differ relatively by 1e-3, and one that
    # is zero in exact arithmetic (attention keys' bias) is pure rounding. A replica's missing share would move
    # the gradients by half.
    for path, gradient in one["gradients"].items():
        atol = 1e-7 + 1e-5 * np.max(np.abs(gradient))
        np.testing.assert_allclose(gradient, two["gradients"][path], rtol=1e-4, atol=atol, err_msg=path)
    # So do the updates: the sum of the replicas' gradients is what gets clipped. Keras' own clipnorm clipped each
    # replica's half, which two replicas then added up to as much as twice one device's clipped gradient: the loss
    # after the first update moved by 0.1-1.3%. What is left is the rounding of the gradient sums.
    np.testing.assert_allclose(one["losses"][2], two["losses"][2], rtol=1e-5)
    np.testing.assert_allclose(one["weight_sum"], two["weight_sum"], rtol=1e-6)


def test_bad_rows_are_skipped_and_counted(tmp_path):
    from captioning.data.datasets import load_examples
    from tests.helpers import write_image

    rows = [
        "image_path,caption",
        f"{write_image(tmp_path / 'a.png')},a red square",
        "missing.png,a blue circle",
        f"{tmp_path / 'a.png'},  ...  ",
    ]
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    rows.append(f"{tmp_path / 'bad.jpg'},a gray star")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    lines = []
    splits = load_examples("csv", str(tmp_path / "pairs.csv"), log=lines.append)
    assert lines == ["kept 1 of 4 rows; skipped 3: 1 missing image, 1 unreadable image, 1 empty caption"]
    assert [e.caption for e in splits["train"]] == ["a red square"]
    (tmp_path / "all_bad.csv").write_text("\n".join(rows[:1] + rows[2:]) + "\n")
    with pytest.raises(NoUsableExamplesError, match="kept 0 of 3 rows"):
        load_examples("csv", str(tmp_path / "all_bad.csv"), log=lines.append)
