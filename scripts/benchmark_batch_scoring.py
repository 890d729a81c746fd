"""Batch scoring against scoring one pair at a time, on the same CSV of 1,000 rows with 100 distinct images.

    python scripts/benchmark_batch_scoring.py --model_dir checkpoints/export

batch:     what `get_similarity_score.py --csv` does: each distinct image decoded and encoded once
           (encode_image), its rows scored from the features (score_features) in batches of similar length.
batch_likelihood_only: the same with `--likelihood_only` (score_text_features): no prior pass, so the decoder
           runs once per pair instead of twice.
per_pair:  one serving_default call per row, which reads, decodes and encodes that row's image every time.
per_pair_likelihood_only: one score_text call per row (no prior pass).

Each method runs in its own process, so the peak memory printed is that method's (ru_maxrss, model included);
the time excludes loading the model and one warm-up call, and is the fastest of --repeats runs. All must produce
the same log-likelihoods.
"""

import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import flags

from captioning.data import synthetic_dataset
from captioning.inference import batch
from captioning.jobs import pairs_csv
from captioning.util import cli, memory

FLAGS = flags.FLAGS
cli.define_model_dir_flag()
flags.DEFINE_integer("rows", 1000, "Rows in the CSV.")
flags.DEFINE_integer("images", 100, "Distinct images among the rows.")
flags.DEFINE_integer("image_pixels", 256, "Side of the JPEG files (decoded and resized to the model's size).")
flags.DEFINE_integer("repeats", 3, "Timed runs per method; the fastest counts (the machine may be shared).")
flags.DEFINE_string("work_dir", None, "Where the CSV, images and outputs go (default: a temporary folder).")
METHODS = ("batch", "batch_likelihood_only", "per_pair", "per_pair_likelihood_only")
flags.DEFINE_enum("method", None, METHODS, "Run one method in this process (used by the parent).")
cli.define_flag_validators(
    *((name, lambda value: value >= 1, "must be at least 1") for name in ("rows", "images", "image_pixels", "repeats")),
)


def fastest(run) -> float:
    """Seconds of the fastest of --repeats runs of `run()`."""
    times = []
    for _ in range(FLAGS.repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def score_in_batches(model_dir: str, pairs, likelihood_only: bool) -> tuple:
    from captioning.inference.runners import open_model
    from captioning.jobs.csv_job import run_csv_job

    model = open_model(model_dir)
    batch.score_pairs(
        model, pairs.image_paths()[:1], pairs.captions()[:1], progress=False, likelihood_only=likelihood_only
    )  # warm-up
    output = os.path.join(os.path.dirname(pairs.path), f"scored_batch_{likelihood_only}.csv")
    seconds = fastest(lambda: run_csv_job(model, pairs, output, progress=False, likelihood_only=likelihood_only))
    with open(output, newline="", encoding="utf-8") as f:
        return seconds, np.array([float(row["log_likelihood"]) for row in csv.DictReader(f)])


def score_one_pair_at_a_time(model_dir: str, pairs, likelihood_only: bool) -> tuple:
    from captioning.inference.local import SavedModelScorer

    scorer = SavedModelScorer(model_dir)
    signature = "score_text" if likelihood_only else "serving_default"
    paths, captions = pairs.image_paths(), pairs.captions()

    def score(path, caption):
        return scorer.run(signature, {"image_bytes": [batch.read_bytes(path)], "text": [caption]})

    score(paths[0], captions[0])  # warm-up
    scores = []

    def score_all():
        scores[:] = [score(path, caption)["log_likelihood"][0] for path, caption in zip(paths, captions)]

    return fastest(score_all), np.array(scores)


def measure(method: str, model_dir: str, csv_path: str) -> dict:
    """Runs in the child process: time, peak memory, and the scores (saved beside the CSV for comparison)."""
    pairs = pairs_csv.read_pairs_csv(csv_path)
    run = score_in_batches if method.startswith("batch") else score_one_pair_at_a_time
    seconds, scores = run(model_dir, pairs, method.endswith("likelihood_only"))
    scores_path = os.path.join(os.path.dirname(csv_path), f"scores_{method}.npy")
    np.save(scores_path, scores)
    return {
        "method": method,
        "pairs": len(scores),
        "seconds": seconds,
        "pairs_per_second": len(scores) / seconds,
        "peak_memory_mb": memory.peak_memory_mb(),
        "scores": scores_path,
    }


def run_child(method: str, csv_path: str) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--method",
            method,
            "--model_dir",
            FLAGS.model_dir,
            "--work_dir",
            os.path.dirname(csv_path),
            "--repeats",
            str(FLAGS.repeats),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_table(results: list, images: int) -> None:
    print("| method | pairs | distinct images | seconds | pairs/s | peak memory (MB) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['method']} | {r['pairs']} | {images} | {r['seconds']:.2f} | {r['pairs_per_second']:.1f} | "
            f"{r['peak_memory_mb']:.0f} |"
        )
    rate = {r["method"]: r["pairs_per_second"] for r in results}
    print(
        f"\nbatch is {rate['batch'] / rate['per_pair']:.1f}x the pairs/s of one pair at a time; skipping the "
        f"prior pass gives {rate['batch_likelihood_only'] / rate['batch']:.2f}x (batch) and "
        f"{rate['per_pair_likelihood_only'] / rate['per_pair']:.2f}x (one pair at a time)"
    )


def main(argv):
    del argv
    if FLAGS.method:
        csv_path = os.path.join(FLAGS.work_dir, "pairs.csv")
        print(json.dumps(measure(FLAGS.method, FLAGS.model_dir, csv_path)))
        return 0
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="benchmark_batch_scoring_")
    csv_path = synthetic_dataset.write_pairs_csv(work_dir, FLAGS.rows, FLAGS.images, FLAGS.image_pixels)
    print(f"{FLAGS.rows} rows, {FLAGS.images} distinct {FLAGS.image_pixels}px JPEG images: {csv_path}", file=sys.stderr)
    results = [run_child(method, csv_path) for method in METHODS]
    difference = max(np.max(np.abs(np.load(results[0]["scores"]) - np.load(r["scores"]))) for r in results[1:])
    print_table(results, FLAGS.images)
    print(f"largest log_likelihood difference between the methods: {difference:.2e}")
    return 0


if __name__ == "__main__":
    cli.run(main)
