"""Test helpers: tiny model settings, training on synthetic scenes, image files."""

import contextlib
import http.server
import io
import os
import re
import subprocess
import sys
import threading
import time

import pytest
from PIL import Image

from captioning.data.datasets import ensure_synthetic_dataset
from captioning.data.synthetic import MAX_OBJECTS
from captioning.model.config import ModelConfig
from captioning.training.config import TrainingConfig

TINY_MODEL = ModelConfig(
    max_length=16,
    image_size=32,
    embed_dim=32,
    num_heads=2,
    num_layers=1,
    ff_dim=64,
    dropout=0.0,
    image_dropout=0.2,
    context_heads=2,
    contrastive_dim=16,
)
TINY_TRAINING = TrainingConfig(
    global_batch_size=16,
    epochs=1,
    steps_per_epoch=12,
    learning_rate=3e-3,
    warmup_steps=2,
    checkpoint_every_steps=6,
    validation_steps=2,
    count_loss_weight=1.0,
)
# How long a test waits for a TensorFlow child process: a safety net for a hung child, not a time limit. On a loaded
# 2-core machine (CI shares it) TensorFlow alone can take minutes to start; a 300 s deadline expired there.
CHILD_TIMEOUT = 600
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(script: str, *args, **kwargs) -> subprocess.CompletedProcess:
    """`python SCRIPT ARGS...` from the repository's root, as a user runs it: output captured as text."""
    return subprocess.run(
        [sys.executable, script, *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        **kwargs,
    )


# train.py's flags for a small model on 40 scenes, at the default image size.
TINY_TRAIN_FLAGS = [
    "--synthetic_num_images",
    "40",
    "--embed_dim",
    "32",
    "--num_heads",
    "2",
    "--num_layers",
    "1",
    "--ff_dim",
    "64",
    "--max_length",
    "16",
    "--batch_size",
    "8",
]


def synthetic_dataset(directory, num_images=60, seed=0, image_size=32, max_objects=MAX_OBJECTS):
    return ensure_synthetic_dataset(str(directory), num_images, seed, image_size, max_objects=max_objects)


def train_model(
    output_dir, model_config=TINY_MODEL, training_config=TINY_TRAINING, num_images=60, max_objects=MAX_OBJECTS, **kwargs
):
    """Trains on synthetic scenes with run_training (the code path of train.py); returns the export path."""
    from captioning.training.run import run_training

    data_dir = os.path.join(str(output_dir), "data")
    annotations = synthetic_dataset(data_dir, num_images, image_size=model_config.image_size, max_objects=max_objects)
    return run_training(
        model_config,
        training_config,
        "coco",
        annotations,
        os.path.join(data_dir, "images"),
        str(output_dir),
        **{"log": lambda *_: None, **kwargs},
    )


# Lines that say why a process died in native code: TensorFlow's fatal log lines and failed checks, glibc's heap
# checks, and faulthandler's report (its first frames are the crashing thread's).
_NATIVE_CRASH = re.compile(
    r"^F\d{4} |Check failed|Fatal Python error|corrupted|free\(\)|double free|terminate called", re.MULTILINE
)  # ^ at each line: assert_processes searches whole outputs


def output_report(output: str, tail: int = 2000) -> str:
    """A failed process's output for an assertion message: its last `tail` characters, after the lines around its
    first native crash, which a long stack dump would push out of the tail."""
    lines = output.splitlines()
    first = next((i for i, line in enumerate(lines) if _NATIVE_CRASH.search(line)), None)
    crash = "" if first is None else "\n".join(line[:300] for line in lines[max(0, first - 3) : first + 20])
    return crash + "\n[...]\n" * bool(crash) + output[-tail:]


class TensorFlowCrash(AssertionError):
    """A subprocess that runs several replicas died in native code (a signal, a TF check, glibc's heap check), not
    in ours. TF 2.21.0 does so now and then in a multi-replica CPU run's first step (docs/training.md,
    "Training on several machines"), so the tests of several replicas run again on it, and only on it, up to
    twice: RERUN_ON_TF_CRASH.
    Once was not enough: in one whole-suite run the lost-worker test's chief crashed in both of its tries."""


RERUN_ON_TF_CRASH = pytest.mark.flaky(reruns=2, only_rerun=[TensorFlowCrash])


def assert_processes(condition: bool, *outputs: str) -> None:
    """Asserts `condition` about subprocesses with these outputs, each's output_report the message; raises
    TensorFlowCrash when one of them shows a native crash."""
    if not condition:
        crashed = any(_NATIVE_CRASH.search(output) for output in outputs)
        raise (TensorFlowCrash if crashed else AssertionError)("\n".join(output_report(o) for o in outputs))


def write_image(path, size=(32, 32), color=(200, 30, 30)):
    Image.new("RGB", size, color).save(path)
    return str(path)


def animated_gif(frames, side) -> bytes:
    """A GIF of `frames` full side x side frames alternating two colours: small on disk, large once decoded."""
    images = [Image.new("P", (side, side), n % 2) for n in range(frames)]
    for image in images:
        image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=50, disposal=1)
    return buffer.getvalue()


@contextlib.contextmanager
def dripping_server(header_first: bool = True, images: dict = None, seconds: float = 5, outcomes=None):
    """A loopback server (yields its base URL) that answers `images` (path -> bytes) at once and every other path
    with one byte every 0.2 s for `seconds`: in the body after the headers, or with `header_first=False` in the
    headers themselves. Each drip puts into the queue `outcomes`, if given, "hung up" when the client went away
    before the drip ended, else "finished": the server's own record, so a test asserts that a deadline cut the
    client off without timing it."""

    class Drip(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if images and self.path in images:
                self.send_response(200)
                self.send_header("Content-Length", str(len(images[self.path])))
                self.end_headers()
                self.wfile.write(images[self.path])
                return
            if header_first:
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
            else:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            outcome, stop_at = "finished", time.monotonic() + seconds
            try:
                while time.monotonic() < stop_at:
                    self.wfile.write(b"\x89")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                outcome = "hung up"
            if outcomes is not None:
                outcomes.put(outcome)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
