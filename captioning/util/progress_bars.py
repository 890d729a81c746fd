"""tqdm progress bars that suit where they are written: a live bar on a terminal; in a file or a pipe (a log), a
whole line now and then (every LOG_SECONDS and at the end) instead of bar frames joined by carriage returns."""

import sys

from tqdm import tqdm

LOG_SECONDS = 30


class _Lines:
    """A file that receives tqdm's frames ("\\r" + status) and writes each as one line."""

    def __init__(self, file):
        self._file = file

    def write(self, text: str) -> None:
        for frame in text.split("\r"):
            frame = frame.rstrip()  # tqdm pads a frame with spaces to cover a longer one
            if frame:
                self._file.write(frame + "\n")

    def flush(self) -> None:
        self._file.flush()


def _is_terminal(file) -> bool:
    return hasattr(file, "isatty") and file.isatty()


def progress_bar(iterable=None, *, file=None, **kwargs) -> tqdm:
    """tqdm(iterable, **kwargs) on `file` (stderr by default), as a bar on a terminal and as lines elsewhere."""
    file = sys.stderr if file is None else file
    if _is_terminal(file):
        return tqdm(iterable, file=file, **kwargs)
    return tqdm(iterable, file=_Lines(file), **{"mininterval": LOG_SECONDS, "ascii": True, **kwargs})
