"""TensorFlow's start-up noise is quiet by default in every entry point and back with the verbose switch."""

import os
import subprocess
import sys

from captioning.util.logging_setup import is_native_noise, verbose_requested
from tests.helpers import CHILD_TIMEOUT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What an entry point does first: quieten, then import TensorFlow, which probes for CUDA; then log an error.
SCRIPT = (
    "from captioning.util import cli; cli.quiet_start(); import tensorflow as tf, sys; "
    "tf.config.list_physical_devices('GPU'); print('error: a real one', file=sys.stderr)"
)


def run(environ):
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        env={**os.environ, **environ},
    )


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


# Imports every library module (not the entry points: __main__ and commands/, whose job is defining flags) after
# TensorFlow, and prints what it changed of the process: stderr, file descriptor 2, logging, absl flags, environment.
LIBRARY_IMPORT = """
import logging, os, pkgutil, sys, importlib
import tensorflow as tf
from absl import flags

def state():
    loggers = {name: (logging.getLogger(name).level, len(logging.getLogger(name).filters),
                      len(logging.getLogger(name).handlers)) for name in ("", "tensorflow", "absl")}
    return {"stderr": id(sys.stderr), "fd2": os.fstat(2).st_ino, "loggers": loggers,
            "flags": sorted(flags.FLAGS), "environ": dict(os.environ)}

before = state()
import captioning
names = [m.name for m in pkgutil.walk_packages(captioning.__path__, "captioning.")
         if not m.name.endswith("__main__") and not m.name.startswith("captioning.commands.")]
for name in names:
    importlib.import_module(name)
after = state()
print(len(names), [key for key in before if before[key] != after[key]])
"""


def test_importing_the_library_changes_nothing_global():
    result = subprocess.run(
        [sys.executable, "-c", LIBRARY_IMPORT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    count, changed = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(count) > 40 and changed == "[]"
