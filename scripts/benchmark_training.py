"""Training speed: step time and examples/s of the training step, and examples/s the input pipeline delivers.

    python scripts/benchmark_training.py                      # every case below, one child process each
    python scripts/benchmark_training.py --cases small_base,small_loop16 --steps 32

Each case changes one thing against `small_base` (the default small CNN at 64 px, global batch 64, float32,
one step per tf.function call, per-file reads, one worker) or `effnet_base` (EfficientNetB0 at 224 px, weights
none, global batch 16). `*_input` cases time the input pipeline alone (no model): compare its examples/s with
the training cases' to see whether the input is the bottleneck. The source images are 256 px PNG scenes (real
COCO images are larger JPEGs, so per-file reads cost more there). Two-worker cases run two local processes
with TF_CONFIG on loopback ports and the same global batch. The first call (tracing) is not timed.
"""

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

from absl import flags

from captioning.util import cli

FLAGS = flags.FLAGS
flags.DEFINE_list("cases", [], "Cases to run (default: all).")
flags.DEFINE_integer("steps", 32, "Timed steps per small-model case (a multiple of 16).")
flags.DEFINE_integer("effnet_steps", 6, "Timed steps per EfficientNetB0 case.")
flags.DEFINE_integer("source_images", 256, "Synthetic scenes written as the dataset.")
flags.DEFINE_string("work_dir", None, "Where the data and runs go (default: a temporary folder).")
flags.DEFINE_string("case", None, "Run one case in this process (used by the parent).")
cli.define_flag_validators(
    ("steps", lambda value: value >= 16 and value % 16 == 0, "must be a multiple of 16"),
    ("effnet_steps", lambda value: value >= 1, "must be at least 1"),
    ("source_images", lambda value: value >= 16, "must be at least 16"),
    ("work_dir", lambda path: not os.path.isfile(path), "is a file: give a folder"),
)


@dataclasses.dataclass(frozen=True)
class Case:
    backbone: str = "small_cnn"
    image_size: int = 64
    batch_size: int = 64
    steps_per_loop: int = 1
    mixed_precision: bool = False
    tfrecords: bool = False
    workers: int = 1
    input_only: bool = False

    def describe(self) -> str:
        parts = [
            f"{self.backbone} {self.image_size}px",
            f"batch {self.batch_size}",
            "bf16" if self.mixed_precision else "fp32",
            f"steps_per_loop {self.steps_per_loop}",
            "TFRecords" if self.tfrecords else "per-file reads",
            f"{self.workers} worker(s)",
        ]
        return ("input pipeline only: " if self.input_only else "") + ", ".join(parts)


SMALL, EFFNET = Case(), Case(backbone="EfficientNetB0", image_size=224, batch_size=16)
CASES = {
    "small_base": SMALL,
    "small_loop16": dataclasses.replace(SMALL, steps_per_loop=16),
    "small_bf16": dataclasses.replace(SMALL, mixed_precision=True),
    "small_tfrecords": dataclasses.replace(SMALL, tfrecords=True),
    "small_2_workers": dataclasses.replace(SMALL, workers=2),
    "small_input_files": dataclasses.replace(SMALL, input_only=True),
    "small_input_tfrecords": dataclasses.replace(SMALL, input_only=True, tfrecords=True),
    "effnet_base": EFFNET,
    "effnet_bf16": dataclasses.replace(EFFNET, mixed_precision=True),
    "effnet_input_files": dataclasses.replace(EFFNET, input_only=True),
    "effnet_input_tfrecords": dataclasses.replace(EFFNET, input_only=True, tfrecords=True),
}


def prepare_data(work_dir: str, source_images: int, image_sizes) -> None:
    """The synthetic scenes as files, and as TFRecords at each image size (written once per work_dir)."""
    from captioning.data import tfrecords
    from captioning.data.datasets import ensure_synthetic_dataset, load_examples

    annotations = ensure_synthetic_dataset(os.path.join(work_dir, "scenes"), source_images, 0, 256)
    splits = load_examples("coco", annotations, os.path.join(work_dir, "scenes", "images"), log=lambda *_: None)
    for size in image_sizes:
        directory = os.path.join(work_dir, f"tfrecords_{size}")
        if not os.path.exists(os.path.join(directory, tfrecords.MANIFEST)):
            tfrecords.write_tfrecords(splits, directory, size, images_per_shard=32)


def training_data(case: Case, work_dir: str):
    from captioning.data import tfrecords
    from captioning.data.datasets import load_examples

    if case.tfrecords:
        records = tfrecords.open_split(os.path.join(work_dir, f"tfrecords_{case.image_size}"), "train")
        return records, records.captions()
    splits = load_examples(
        "coco",
        os.path.join(work_dir, "scenes", "annotations", "captions.json"),
        os.path.join(work_dir, "scenes", "images"),
        log=lambda *_: None,
    )
    return splits["train"], [e.caption for e in splits["train"]]


def measure(case: Case, work_dir: str, steps: int) -> dict:
    """Runs in a child process: seconds per step and examples/s, after one untimed call."""
    from captioning.training import distribute

    strategy = distribute.make_strategy()  # first: a multi-worker runtime is set up only at start-up
    import tensorflow as tf

    from captioning.data import inputs
    from captioning.data.text import Tokenizer, Vocabulary
    from captioning.model.config import ModelConfig
    from captioning.training import counting
    from captioning.training.config import TrainingConfig
    from captioning.training.loop import Trainer

    data, captions = training_data(case, work_dir)
    vocabulary = Vocabulary.build(captions)
    model_config = ModelConfig(vocab_size=len(vocabulary), image_size=case.image_size, backbone=case.backbone)
    training = TrainingConfig(
        global_batch_size=case.batch_size,
        steps_per_loop=case.steps_per_loop,
        mixed_precision=case.mixed_precision,
        warmup_steps=10,
    )
    if case.input_only:
        tokenizer = Tokenizer(vocabulary, model_config.max_length)
        iterator = iter(
            inputs.distributed_training_data(strategy, data, tokenizer, case.image_size, case.batch_size, 0, 0.1, 0)
        )
        next(iterator)
        started = time.perf_counter()
        for _ in range(steps):
            next(iterator)["images"]  # noqa: B018 (pulling the batch is the work)
        seconds = time.perf_counter() - started
        return {"seconds_per_step": seconds / steps, "examples_per_second": case.batch_size * steps / seconds}
    run_dir = os.path.join(work_dir, "runs", f"{os.getpid()}")
    training = counting.where_possible(training, model_config.context_heads, data, log=lambda *_: None)
    trainer = Trainer(model_config, training, vocabulary, run_dir, strategy)
    iterator = iter(trainer.training_data(data))
    calls = max(1, steps // case.steps_per_loop)
    float(trainer._train_loop(iterator, tf.constant(case.steps_per_loop))[0])  # traces
    started = time.perf_counter()
    for _ in range(calls):
        loss = trainer._train_loop(iterator, tf.constant(case.steps_per_loop))[0]
    float(loss)
    seconds = time.perf_counter() - started
    done = calls * case.steps_per_loop
    return {
        "seconds_per_step": seconds / done,
        "examples_per_second": case.batch_size * done / seconds,
        "policy": trainer.policy,
        "chief": trainer.is_chief,
    }


def run_case(name: str, work_dir: str, steps: int) -> dict:
    """The case in child processes (one per worker); the chief's measurement."""
    case = CASES[name]
    command = [sys.executable, os.path.abspath(__file__), "--case", name, "--work_dir", work_dir, "--steps", str(steps)]
    environ = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    environs = [environ]
    if case.workers > 1:
        from captioning.training.distribute import local_cluster

        environs = [{**environ, "TF_CONFIG": config} for config in local_cluster(case.workers)]
    children = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for env in environs
    ]
    outputs = [child.communicate(timeout=1800) for child in children]
    if any(child.returncode for child in children):
        raise RuntimeError(f"{name} failed:\n" + "\n".join(err[-2000:] for _, err in outputs))
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    return next(r for r in results if r.get("chief", True))


def main(argv):
    del argv
    if FLAGS.case:
        print(json.dumps(measure(CASES[FLAGS.case], FLAGS.work_dir, FLAGS.steps)))
        return 0
    names = FLAGS.cases or list(CASES)
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        return cli.fail(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="benchmark_training_")
    prepare_data(work_dir, FLAGS.source_images, sorted({CASES[n].image_size for n in names}))
    print("| case | setting | s/step | examples/s |")
    print("|---|---|---:|---:|")
    for name in names:
        steps = FLAGS.effnet_steps if CASES[name].backbone != "small_cnn" else FLAGS.steps
        result = run_case(name, work_dir, steps)
        print(
            f"| {name} | {CASES[name].describe()} | {result['seconds_per_step']:.3f} | "
            f"{result['examples_per_second']:.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    cli.run(main)
