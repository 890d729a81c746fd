"""TensorFlow's start-up noise is quiet by default in every entry point and back with the verbose switch."""

import os
import subprocess
import sys

from captioning.util.logging_setup import is_native_noise, verbose_requested

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What an entry point does first: import the package, then TensorFlow, which probes for CUDA; then log an error.
SCRIPT = ("import captioning, tensorflow as tf, sys; tf.config.list_physical_devices('GPU'); "
          "print('error: a real one', file=sys.stderr)")


def run(environ):
    return subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **environ})


def test_tensorflow_start_up_lines_are_hidden_unless_verbose():
    quiet, verbose = run({}), run({"CAPTIONING_VERBOSE": "1"})
    assert quiet.returncode == verbose.returncode == 0, quiet.stderr[-2000:]
    assert quiet.stderr.strip() == "error: a real one"
    assert "cuda" in verbose.stderr.lower() and "error: a real one" in verbose.stderr


def test_which_lines_are_noise():
    assert is_native_noise(b"I0000 00:00:1795465680.212977    8218 port.cc:153] oneDNN custom operations are on.\n")
    assert is_native_noise(b"E0000 00:00:1795465681.339184    8218 cuda_platform.cc:52] failed call to cuInit: x\n")
    assert not is_native_noise(b"E1123 20:28:15.087693  140018 collective_ops.cc:12] Collective ops timed out\n")
    assert not is_native_noise(b"Traceback (most recent call last):\n")
    assert verbose_requested(["train.py", "--verbose"], {}) and not verbose_requested(["train.py"], {})
