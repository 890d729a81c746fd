"""Copying a model version's collection to a Qdrant server or cluster: vectors and payloads, no re-embedding.

Pages of points go in id order; each page first asks the destination which of its ids it already holds and
sends only the others, so an interrupted push run again skips what arrived and continues. The images and
features stay in the index folder: serve with `--index_dir` (the store) and `--qdrant_url` (the points).
"""

import dataclasses
import time

import numpy as np

from captioning.util.progress_bars import progress_bar

PAGE_SIZE = 256


@dataclasses.dataclass
class PushResult:
    copied: int = 0
    already_there: int = 0
    seconds: float = 0.0

    def summary(self, version, destination) -> str:
        return (
            f"pushed model version {version} to {destination}: {self.copied} images copied, "
            f"{self.already_there} already there, in {self.seconds:.1f} s"
        )


def push(index, destination, version: int, page_size: int = PAGE_SIZE, progress: bool = True) -> PushResult:
    """Copies `version`'s points of `index` (an ImageIndex) into `destination` (an engine, e.g. ServerEngine)."""
    result = PushResult()
    started = time.monotonic()
    with progress_bar(total=index.count(version), unit="image", desc="pushing", disable=not progress) as bar:
        page = []
        for entry in index.all_entries(version, with_vectors=True, page_size=page_size):
            page.append(entry)
            if len(page) == page_size:
                _send(destination, version, page, result)
                bar.update(len(page))
                page = []
        if page:
            _send(destination, version, page, result)
            bar.update(len(page))
    result.seconds = time.monotonic() - started
    return result


def _send(destination, version, page, result) -> None:
    present = destination.existing(version, [image_id for image_id, _, _ in page])
    missing = [entry for entry in page if entry[0] not in present]
    if missing:
        destination.upsert(
            version,
            [image_id for image_id, _, _ in missing],
            np.stack([vector for _, _, vector in missing]),
            [payload for _, payload, _ in missing],
        )
    result.copied += len(missing)
    result.already_there += len(page) - len(missing)
