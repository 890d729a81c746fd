"""Which tf.distribute strategy a run uses, and who writes what when several workers train together.

One machine: MirroredStrategy over its GPUs (or the CPU). Several workers (TF_CONFIG names more than one task):
MultiWorkerMirroredStrategy, with TF's convention that the chief alone writes the run's files while every other
worker writes its share of each checkpoint (all workers must take part in a save) to a temporary folder that it
removes at once. All workers restore from the chief's checkpoints, so `--output_dir` must be on storage every
worker sees (NFS, GCS, ...).
"""

import json
import os
import shutil
import socket

import tensorflow as tf

# TF's own modules, as MultiWorkerMirroredStrategy uses them: the public API can neither set the coordination
# service's heartbeat timeout nor report a worker's failure to the others.
from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
from tensorflow.python.eager import context

from captioning.util.errors import InvalidInput

# A peer that stops answering fails the collectives after this long instead of hanging the job forever; the
# coordination service's heartbeat usually notices a dead worker sooner.
COLLECTIVE_TIMEOUT_SECONDS = 300
# The coordination service declares a worker crashed when it has sent no heartbeat for this long. TF's default, 10 s,
# is shorter than a loaded machine's stalls; and a worker that exits never tells the service (TF does not shut its
# agent down at exit), so a peer still finishing 10 s later was told "The tasks have crashed" and printed it after
# a successful run. A worker that fails in Python says so at once (report_failure), so only a killed worker waits
# this long to be noticed.
HEARTBEAT_TIMEOUT_SECONDS = 60


def cluster_size(tf_config: str = None) -> int:
    """Chief and worker tasks named by TF_CONFIG (0 without one). Malformed TF_CONFIG is a one-line error."""
    text = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not text.strip():
        return 0
    try:
        cluster = json.loads(text)["cluster"]
        return sum(len(cluster.get(job, [])) for job in ("chief", "worker"))
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidInput(f"TF_CONFIG is not valid JSON with a 'cluster' of chief/worker addresses: {error}") from None


def local_cluster(workers: int) -> list:
    """TF_CONFIG values for `workers` processes on this machine, on free loopback ports: for tests and benchmarks
    of multi-worker training without a cluster."""
    sockets = [socket.socket() for _ in range(workers)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]}
    for s in sockets:
        s.close()
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(workers)]


def make_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG names several workers; otherwise MirroredStrategy over every
    visible GPU (CUDA_VISIBLE_DEVICES is honoured by TF), the CPU when there is none. Create it before any other
    TensorFlow work: the multi-worker strategy configures the runtime, which TF allows only at start-up."""
    if not os.environ.get("TF_CONFIG", "x").strip():
        del os.environ["TF_CONFIG"]  # TF's own resolver fails on a blank TF_CONFIG, even for MirroredStrategy
    if cluster_size() > 1:
        _configure_coordination_service(json.loads(os.environ["TF_CONFIG"])["cluster"])
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy([d.name for d in gpus] if gpus else ["/cpu:0"])


def _configure_coordination_service(cluster: dict) -> None:
    """The coordination service MultiWorkerMirroredStrategy would start (it keeps one configured before it), with
    HEARTBEAT_TIMEOUT_SECONDS in place of TF's 10 s."""
    jobs = [job for job in ("chief", "worker") if cluster.get(job)]
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=f"/job:{jobs[0]}/replica:0/task:0",
        coordinated_jobs=[
            coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(cluster[job])) for job in jobs
        ],
        heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_SECONDS * 1000,
    )


def report_failure(message: str) -> None:
    """Tells every other worker of a multi-worker job that this one failed (`message`): their collectives end at
    once with it, instead of when the heartbeat times out. Does nothing outside such a job, or before it started."""
    try:
        if cluster_size() > 1:
            context.context().report_error_to_cluster(tf.errors.UNAVAILABLE, message)
    except (ValueError, tf.errors.OpError):  # a bad TF_CONFIG, no job yet (TF never started), or the job is gone
        pass


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def task_id(strategy: tf.distribute.Strategy) -> int:
    return strategy.cluster_resolver.task_id if is_multi_worker(strategy) else 0


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The task that writes the run's files: `chief` if the cluster has one, else worker 0; the only task of a
    single-machine run."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    if "chief" in resolver.cluster_spec().jobs:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Every worker waits here for all the others (an all-reduce of one number): at the end of a job, the other
    workers stay up while the chief writes the model, instead of exiting and being reported dead."""
    if is_multi_worker(strategy):
        strategy.reduce("sum", strategy.run(tf.function(lambda: tf.constant(1.0))), axis=None)


class Checkpoints:
    """The run's checkpoints under `directory`: the chief's are the real ones; another worker saves its copy to
    `directory/workertemp_<task>` and deletes it right after (TF's convention: every worker takes part in a save,
    only one keeps it). Each checkpoint is complete before the index names it, so kill -9 mid-save leaves the
    previous one as the latest."""

    def __init__(
        self, checkpoint: tf.train.Checkpoint, directory: str, strategy: tf.distribute.Strategy, max_to_keep: int = 3
    ):
        self.directory, self.chief = directory, is_chief(strategy)
        self._checkpoint = checkpoint
        self._write_dir = directory if self.chief else os.path.join(directory, f"workertemp_{task_id(strategy)}")
        if not self.chief:  # a copy left by a worker killed mid-save; a finished job's rerun saves nothing to clear it
            shutil.rmtree(self._write_dir, ignore_errors=True)
        self._manager = tf.train.CheckpointManager(checkpoint, self._write_dir, max_to_keep=max_to_keep)

    @property
    def latest(self):
        return tf.train.latest_checkpoint(self.directory)

    def restore_latest(self) -> bool:
        latest = self.latest
        if latest:
            self._checkpoint.restore(latest).assert_existing_objects_matched()
        return bool(latest)

    def save(self, step: int) -> None:
        self._manager.save(checkpoint_number=step)
        if not self.chief:
            shutil.rmtree(self._write_dir, ignore_errors=True)
