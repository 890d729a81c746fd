"""TensorFlow's start-up noise (CUDA probing, oneDNN notices, SavedModel "unsupported characters" lines) and
Apache Beam's notices about optional cloud clients are off by default in every entry point, and back with
`--verbose` or CAPTIONING_VERBOSE=1.

Each entry point calls quiet_tensorflow_unless_verbose (through captioning.util.cli) before anything imports
TensorFlow; importing the library changes nothing of the process. It reads the raw command line: TF's C++
logging is set up when the library loads, before absl parses flags.
"""

import contextlib
import logging
import os
import re
import sys
import threading

VERBOSE_ENV = "CAPTIONING_VERBOSE"
_quietened = False
_VERBOSE_ARGS = ("--verbose", "--verbose=true", "--verbose=1", "--verbose=True")
# A C++ log line of TF (absl format: severity, date or 0000, time, thread, file.cc:line]) at INFO or WARNING, or
# one of the ERROR lines a CPU-only machine always prints (or gRPC's bind failure, which serving.server reports
# itself), or absl's notice that logging is not yet set up.
_NATIVE_NOISE = re.compile(
    rb"^([IW]\d{4} [\d:.]+\s+\d+ [\w./-]+\.(cc|h):\d+\]"
    rb"|E\d{4} [\d:.]+\s+\d+ [\w./-]+\.cc:\d+\] (failed call to cuInit|oneDNN supports"
    rb"|Failed to add port to server)"
    rb"|WARNING: All log messages before absl::InitializeLog\(\))"
)


def verbose_requested(argv=None, environ=None) -> bool:
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    return environ.get(VERBOSE_ENV, "").lower() not in ("", "0", "false", "no") or any(
        arg in _VERBOSE_ARGS for arg in argv[1:]
    )


class _LibraryChatter(logging.Filter):
    """Drops TensorFlow's, Keras' and Beam's own Python log records below ERROR (TF and Keras log through absl's
    logger, some Beam modules straight through the root logger)."""

    def filter(self, record):
        noisy = any(part in record.pathname for part in ("/tensorflow/", "/keras/", "/tf_keras/", "/apache_beam/"))
        return record.levelno >= logging.ERROR or not noisy


def is_native_noise(line: bytes) -> bool:
    return bool(_NATIVE_NOISE.match(line))


def _filter_native_stderr() -> None:
    """TF 2.21 writes its C++ log lines straight to file descriptor 2 before its log level is configured (so
    TF_CPP_MIN_LOG_LEVEL no longer hides them): route fd 2 through a pipe that drops those lines. Python's own
    sys.stderr keeps the real stream, so error messages and tracebacks never depend on the filter thread."""
    real_stderr = os.dup(2)
    sys.stderr.flush()
    sys.stderr = os.fdopen(os.dup(real_stderr), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward():
        with os.fdopen(read_end, "rb") as pipe, os.fdopen(real_stderr, "wb", buffering=0) as out:
            for line in pipe:
                if not is_native_noise(line):
                    out.write(line)

    threading.Thread(target=forward, name="stderr-filter", daemon=True).start()


def quiet_tensorflow_unless_verbose(argv=None, environ=None) -> bool:
    """Hides TF's start-up and C++ log lines and its Python-side chatter unless verbose output was asked for.
    Under pytest the native filter stays off (pytest captures fd 2 itself). Returns whether it quietened."""
    global _quietened
    environ = os.environ if environ is None else environ
    if verbose_requested(argv, environ):
        return False
    if _quietened:  # the stderr filter is installed once per process
        return True
    _quietened = True
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # still honoured for lines after TF's logging is set up
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    # Beam notes the optional cloud clients it lacks (apitools, BigQuery storage) on every run.
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    logging.getLogger("absl").addFilter(_LibraryChatter())
    logging.getLogger().addFilter(_LibraryChatter())
    if "pytest" not in sys.modules:
        _filter_native_stderr()
    return True


@contextlib.contextmanager
def root_logger_kept():
    """For importing a library that logs through logging.warning() at import time (Apache Beam): that call would
    give the root logger a handler for the rest of the process. The root logger is as it was afterwards, and the
    import's own warnings are hidden unless --verbose."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    if not verbose_requested():
        root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
