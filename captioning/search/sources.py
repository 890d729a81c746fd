"""What `add` accepts: image files, folders (searched recursively), CSVs of image paths or URLs, and URLs.

Each source becomes (name, loader): the loader reads or fetches the bytes only when its batch is indexed, so a
folder of a million files is not held in memory.
"""

import csv
import os

from captioning.search.fetch import FetchOptions, fetch_image, is_url, without_userinfo
from captioning.util.errors import InvalidInput

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
CSV_COLUMNS = ("image_path", "path", "url", "image_url")  # the first present names the images; else column one


class SourceError(InvalidInput):
    """A PATH argument that names nothing to index (missing file, unreadable CSV)."""


def _read_file(path):
    def load():
        with open(path, "rb") as f:
            return f.read()

    return load


def _csv_entries(path: str) -> list:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise SourceError(f"{path}: cannot read CSV ({error})") from None
    if not rows:
        return []
    header = [name.strip().lower() for name in rows[0]]
    column = next((header.index(name) for name in CSV_COLUMNS if name in header), None)
    if column is None:  # no header: every row's first cell is an image
        column, body = 0, rows
    else:
        body = rows[1:]
    folder = os.path.dirname(os.path.abspath(path))
    entries = [row[column].strip() for row in body if len(row) > column and row[column].strip()]
    return [entry if is_url(entry) else os.path.join(folder, entry) for entry in entries]


def expand(arguments, fetch_options: FetchOptions = FetchOptions()) -> list:
    """[(source name, loader)] for the PATH arguments of `add`, in order; SourceError for one that names nothing."""
    items = []

    def add(entry):
        if is_url(entry):
            items.append((without_userinfo(entry), lambda: fetch_image(entry, fetch_options)))
        else:
            items.append((os.path.abspath(entry), _read_file(entry)))

    for argument in arguments:
        if is_url(argument):
            add(argument)
        elif os.path.isdir(argument):
            for folder, subfolders, files in os.walk(argument):
                subfolders.sort()
                for name in sorted(files):
                    if name.lower().endswith(IMAGE_EXTENSIONS):
                        add(os.path.join(folder, name))
        elif argument.lower().endswith(".csv") and os.path.isfile(argument):
            for entry in _csv_entries(argument):
                add(entry)
        elif os.path.isfile(argument):
            add(argument)
        else:
            raise SourceError(f"{argument}: no such file, folder or URL")
    return items


def display_name(source: str) -> str:
    """What a page or an API shows of a source: a URL, an upload's name or a relative path as they are; an absolute
    path as its file name only (the server's folders are nobody's business)."""
    return os.path.basename(source) if os.path.isabs(source) and not is_url(source) else source
