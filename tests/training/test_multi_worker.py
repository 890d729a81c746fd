"""Several workers (TF_CONFIG, MultiWorkerMirroredStrategy) on loopback ports: two workers train like one on the
same global batch, only the chief writes files, and a job that lost a worker ends cleanly and resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from captioning.training.distribute import cluster_size, local_cluster
from tests.helpers import CHILD_TIMEOUT, RERUN_ON_TF_CRASH, TINY_TRAIN_FLAGS, assert_processes, synthetic_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# TINY_TRAIN_FLAGS keep the default image size (64): a small model, but the encoder's real grid.

# Three steps on a global batch of 8 under make_strategy(): one worker, or each of two workers with 4 examples.
LOSSES = """
import json, sys
from captioning.training import distribute
strategy = distribute.make_strategy()  # first, as train.py does
import dataclasses, keras
from captioning.data.pipeline import training_dataset
from captioning.data.readers import read_coco
from captioning.data.text import Vocabulary
from captioning.data.scene_counts import counts_array
from captioning.training.loop import Trainer
from tests.helpers import TINY_MODEL, TINY_TRAINING
examples = read_coco(sys.argv[1], sys.argv[2])
vocabulary = Vocabulary.build([e.caption for e in examples])
config = dataclasses.replace(TINY_MODEL, vocab_size=len(vocabulary))
keras.utils.set_random_seed(1)
trainer = Trainer(config, TINY_TRAINING, vocabulary, sys.argv[3], strategy)
dataset = training_dataset(examples, trainer.tokenizer, config.image_size, 8, 0, 0.25,
                           extras={"object_counts": counts_array(examples)})
iterator = iter(strategy.experimental_distribute_dataset(dataset))
losses = [float(trainer._train_step(iterator)[0]) for _ in range(3)]
distribute.barrier(strategy)  # as every job ends: no worker exits while another still runs
print(json.dumps({"losses": losses, "replicas": strategy.num_replicas_in_sync, "chief": trainer.is_chief}))
"""


def start(command, tf_config=None, log_path=None):
    environ = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    if tf_config:
        environ["TF_CONFIG"] = tf_config
    output = open(log_path, "w") if log_path else subprocess.PIPE
    return subprocess.Popen(
        command, cwd=ROOT, env=environ, stdout=output, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def finish(processes, timeout=CHILD_TIMEOUT):
    """Waits for every process; kills the lot if one overruns, so a hung collective cannot hang the suite."""
    deadline = time.time() + timeout
    try:
        return [p.wait(timeout=max(1, deadline - time.time())) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_tf_config_chooses_the_strategy_and_bad_tf_config_is_one_line():
    two = json.loads(local_cluster(2)[0])
    assert cluster_size(json.dumps(two)) == 2 and cluster_size("") == 0
    assert cluster_size(json.dumps({"cluster": {"chief": ["a:1"]}, "task": {"type": "chief", "index": 0}})) == 1
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        cluster_size("{not json")


@RERUN_ON_TF_CRASH
def test_two_workers_give_the_losses_of_one_on_the_same_global_batch(tmp_path):
    annotations = synthetic_dataset(tmp_path / "data", num_images=20)
    args = [annotations, str(tmp_path / "data" / "images")]
    losses = [sys.executable, "-X", "faulthandler", "-c", LOSSES, *args]
    one = start([*losses, str(tmp_path / "one")])
    finish([one])
    two = [start([*losses, str(tmp_path / "two")], config) for config in local_cluster(2)]
    finish(two)
    results = []
    for process in [one, *two]:
        output = process.stdout.read()
        assert_processes(process.returncode == 0, output)
        assert_processes("The tasks have crashed" not in output, output)  # a worker reported dead after success
        results.append(json.loads(output.strip().splitlines()[-1]))
    single, chief, other = results
    assert (single["replicas"], chief["replicas"]) == (1, 2) and (chief["chief"], other["chief"]) == (True, False)
    assert chief["losses"] == other["losses"]  # one job: every worker reports the same all-reduced loss
    # As in the two-replica test: equal before and after the first real update (the summed gradient is clipped).
    np.testing.assert_allclose(single["losses"], chief["losses"], rtol=1e-5)


@RERUN_ON_TF_CRASH
def test_a_job_that_loses_a_worker_ends_and_the_same_command_resumes(tmp_path):
    command = [
        sys.executable,
        "train.py",
        "--output_dir",
        str(tmp_path / "run"),
        *TINY_TRAIN_FLAGS,
        "--epochs",
        "1",
        "--steps_per_epoch",
        "400",
        "--checkpoint_every",
        "2",
    ]
    configs = local_cluster(2)
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = [start(command, config, log) for config, log in zip(configs, logs)]
    checkpoint_state = tmp_path / "run" / "ckpt" / "checkpoint"
    deadline = time.time() + CHILD_TIMEOUT
    while not checkpoint_state.exists() and time.time() < deadline and all(w.poll() is None for w in workers):
        time.sleep(0.5)
    if workers[1].poll() is None:
        os.killpg(workers[1].pid, signal.SIGKILL)
    workers[1].wait()
    assert_processes(checkpoint_state.exists(), *(log.read_text() for log in logs))
    chief_code = finish(workers[:1])[0]
    assert_processes(chief_code == 1, logs[0].read_text())
    assert "error: the job lost a worker" in logs[0].read_text()

    # The same command on every worker (the orchestrator's restart), on new ports, for the last 2 steps.
    configs = local_cluster(2)
    command[command.index("400")] = "6"
    workers = [start(command, config, log) for config, log in zip(configs, logs)]
    codes = finish(workers)
    outputs = [log.read_text() for log in logs]
    assert_processes(codes == [0, 0], *outputs)
    assert all("resumed from checkpoint at step" in output for output in outputs)
    assert "exported SavedModel" in outputs[0] and "exported SavedModel" not in outputs[1]
    assert not [name for name in os.listdir(tmp_path / "run" / "ckpt") if name.startswith("workertemp")]
    with open(tmp_path / "run" / "training_metadata.json") as f:
        metadata = json.load(f)
    assert metadata["replicas"] == 2 and metadata["model_config"]["image_size"] == 64
    assert all("validation: loss" in output for output in outputs)  # every worker validated, at 64 pixels
    assert metadata["history"][-1]["step"] == 6 and metadata["history"][-1]["val_loss"] > 0


@RERUN_ON_TF_CRASH
def test_a_worker_that_fails_in_python_says_why_in_one_line_and_the_others_end_at_once(tmp_path):
    # Worker 1's output_dir holds a file where its checkpoints go: it fails (OSError) once the job has started.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "ckpt").write_text("not a folder")
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = [
        start(
            [
                sys.executable,
                "train.py",
                "--output_dir",
                str(output),
                *TINY_TRAIN_FLAGS,
                "--epochs",
                "1",
                "--steps_per_epoch",
                "2",
            ],
            config,
            log,
        )
        for output, config, log in zip([tmp_path / "run", broken], local_cluster(2), logs)
    ]
    codes = finish(workers)
    outputs = [log.read_text() for log in logs]
    assert_processes(codes[0] == 1 and codes[1] != 0, *outputs)
    errors = [[line for line in output.splitlines() if line.startswith("error:")] for output in outputs]
    assert len(errors[1]) == 1 and "File exists" in errors[1][0]
    assert "Traceback" not in outputs[1]
    assert len(errors[0]) == 1 and errors[0][0].startswith("error: the job lost a worker")
    assert "File exists" in errors[0][0]  # the failed worker's reason reached its peer
