"""The --csv job locally against the same job as a Beam pipeline on the DirectRunner, on one synthetic CSV.

    python scripts/benchmark_beam.py --model_dir checkpoints/export          # 10,000 pairs, 1,000 images

local:        get_similarity_score.py --csv (the yardstick)
direct_1:     ... --runner DirectRunner --direct_num_workers=1
direct_2:     ... --runner DirectRunner --direct_num_workers=2 (--running_mode: threads or processes)

Each run is the command line as a user runs it, in its own process: wall time counts Python, TensorFlow and Beam
start-up, the model loads and the job; job time is the job's own (for the local job: reading, scoring and writing,
the model already loaded; for Beam: the pipeline from construction to its last shard, model loads included).
Peak memory is the largest sum of the resident sets of the process and all its children, sampled every 0.1 s.
The three run --repeats times, interleaved, and the table shows medians.
The Beam runs also print where their time went: RunInference's model loading and batch latencies (summed over
the workers) against the job's time. Every Beam output must hold the local scores.
"""

import csv
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import flags

from captioning.data import synthetic_dataset
from captioning.util import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "checkpoints/export", "Export base directory or one version directory.")
flags.DEFINE_integer("rows", 10_000, "Rows in the CSV.")
flags.DEFINE_integer("images", 1_000, "Distinct images among the rows.")
flags.DEFINE_integer("image_pixels", 256, "Side of the JPEG files (decoded and resized to the model's size).")
flags.DEFINE_enum(
    "running_mode", "multi_threading", ["multi_threading", "multi_processing"], "How the DirectRunner runs its workers."
)
flags.DEFINE_string("work_dir", None, "Where the CSV, images and outputs go (default: a temporary folder).")
flags.DEFINE_integer(
    "repeats",
    3,
    "Rounds of the three runs, interleaved; the table shows each figure's median (the machine may be shared).",
)


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and all its descendants, from /proc."""
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    stack += [int(child) for child in f.read().split()]
        except (OSError, StopIteration):  # the process ended while we looked
            continue
    return total


def run(name: str, args: list) -> dict:
    """Runs get_similarity_score.py with `args` -> its JSON summary, wall time and peak tree memory."""
    started, peak = time.perf_counter(), 0.0
    process = subprocess.Popen(
        [sys.executable, "get_similarity_score.py", "--json", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while process.poll() is None:
        peak = max(peak, tree_rss_mb(process.pid))
        time.sleep(0.1)
    wall = time.perf_counter() - started
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{stderr[-3000:]}")
    summary = json.loads(stdout)
    print(f"{name}: {wall:.1f} s", file=sys.stderr)
    return {"method": name, "wall": wall, "peak_mb": peak, **summary}


def median_run(name: str, runs: list) -> dict:
    """One row of the table: the median of each figure over the runs of one method."""
    metrics = {key: float(np.median([r["metrics"][key] for r in runs])) for key in runs[0].get("metrics", {})}
    return {
        "method": name,
        "rows": runs[0]["rows"],
        "metrics": metrics,
        **{key: float(np.median([r[key] for r in runs])) for key in ("wall", "seconds", "peak_mb")},
    }


def log_likelihoods(paths: list) -> dict:
    """{row number: log_likelihood} of a scored CSV (local: its order; Beam: its source_row column)."""
    scores = {}
    for path in paths:
        with open(path, newline="", encoding="utf-8") as f:
            for number, row in enumerate(csv.DictReader(f), start=1):
                scores[int(row.get("source_row", number))] = float(row["log_likelihood"])
    return scores


def print_table(results: list) -> None:
    print("| method | pairs | wall s | pairs/s (wall) | job s | pairs/s (job) | peak memory MB (children incl.) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['method']} | {r['rows']} | {r['wall']:.1f} | {r['rows'] / r['wall']:.0f} | {r['seconds']:.1f} | "
            f"{r['rows'] / r['seconds']:.0f} | {r['peak_mb']:.0f} |"
        )
    local = results[0]
    for r in results[1:]:
        metrics = r["metrics"]
        print(
            f"\n{r['method']}: {local['seconds'] / r['seconds']:.2f}x the local job's pairs/s (job time), "
            f"{local['wall'] / r['wall']:.2f}x by wall time; of its {r['seconds']:.1f} s job, model loading took "
            f"{metrics.get('load_model_latency_milli_secs_total', 0) / 1e3:.1f} s and RunInference batches "
            f"{metrics.get('inference_batch_latency_micro_secs_total', 0) / 1e6:.1f} s (summed over workers) "
            f"in {metrics.get('num_inferences', 0):.0f} image groups (medians of {FLAGS.repeats} runs)"
        )


def main(argv):
    del argv
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="benchmark_beam_")
    csv_path = os.path.join(work_dir, "pairs.csv")
    if not os.path.exists(csv_path):
        synthetic_dataset.write_pairs_csv(work_dir, FLAGS.rows, FLAGS.images, FLAGS.image_pixels)
    print(f"{FLAGS.rows} rows, {FLAGS.images} distinct {FLAGS.image_pixels}px JPEG images: {csv_path}", file=sys.stderr)
    common = ["--model_dir", FLAGS.model_dir, "--csv", csv_path]
    commands = {"local": [*common, "--output", os.path.join(work_dir, "local.csv")]}
    for workers in (1, 2):
        commands[f"direct_{workers}"] = [
            *common,
            "--output",
            os.path.join(work_dir, f"direct_{workers}", "scored.csv"),
            "--runner",
            "DirectRunner",
            f"--direct_num_workers={workers}",
            f"--direct_running_mode={FLAGS.running_mode}",
        ]
    runs = {name: [] for name in commands}
    for _ in range(FLAGS.repeats):
        for name, args in commands.items():
            runs[name].append(run(name, args))
    results = [median_run(name, found) for name, found in runs.items()]
    expected = log_likelihoods([os.path.join(work_dir, "local.csv")])
    difference = 0.0
    for r in results[1:]:
        found = log_likelihoods(sorted(glob.glob(os.path.join(work_dir, r["method"], "scored-*.csv"))))
        assert found.keys() == expected.keys(), f"{r['method']} lost or repeated rows"
        difference = max(difference, max(abs(found[k] - expected[k]) for k in expected))
    print_table(results)
    print(
        f"\nlargest log_likelihood difference from the local job: {difference:.2e} "
        f"(DirectRunner {FLAGS.running_mode}; {os.cpu_count()} cores, load average "
        f"{np.round(os.getloadavg(), 1).tolist()} at the end)"
    )
    return 0


if __name__ == "__main__":
    cli.run(main)
