"""Files that appear whole or not at all: each is written under a temporary name beside its final path and
renamed into place, so an interrupted run (even kill -9) never leaves a half-written file for a reader."""

import contextlib
import os


@contextlib.contextmanager
def replaced_on_success(path: str):
    """Yields a temporary path beside `path` to write to; when the block succeeds, one rename puts it at `path`,
    when it fails, the temporary file is removed. The temporary name keeps everything after the first dot
    (`model.weights.h5`, `curves.png`): Keras and matplotlib read the format from it."""
    directory, name = os.path.split(path)
    stem, dot, suffix = name.partition(".")
    temporary = os.path.join(directory, f"{stem}.tmp{os.getpid()}{dot}{suffix}")
    os.makedirs(directory or ".", exist_ok=True)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text(path: str, text: str) -> None:
    with replaced_on_success(path) as temporary, open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
