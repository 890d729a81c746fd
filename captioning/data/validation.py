"""Dropping rows that would crash or poison training, and saying how many and why.

Large datasets always have a few bad rows (a missing file, a truncated download,
a caption of just "."). They are skipped and counted rather than allowed to kill
a long training run, and the count is reported so a badly broken dataset is
still noticed.
"""

import collections
import concurrent.futures
import dataclasses
import os
import unicodedata

from PIL import Image

from captioning.util.errors import InvalidInput
from captioning.util.progress_bars import progress_bar

# PIL's names for the formats captioning.data.images.decode_and_resize accepts. MPO is
# how PIL names the multi-picture JPEGs some cameras write; TensorFlow reads them as JPEG.
_TF_DECODABLE_FORMATS = {"JPEG", "MPO", "PNG", "BMP", "GIF"}
_PROGRESS_BAR_MIN_IMAGES = 1000
_REASONS = ("missing_image", "unreadable_image", "unsupported_format", "empty_caption")


@dataclasses.dataclass
class SkipReport:
    """How many rows were kept, and how many were skipped for each reason."""

    total: int = 0
    kept: int = 0
    missing_image: int = 0
    unreadable_image: int = 0
    unsupported_format: int = 0  # PIL reads it but tf.io.decode_image cannot
    empty_caption: int = 0

    def summary(self):
        """One line, e.g. "kept 997 of 1000 rows; skipped 3: 1 missing image, 2 empty captions"."""
        line = f"kept {self.kept} of {self.total} rows"
        counts = {reason: getattr(self, reason) for reason in _REASONS}
        if any(counts.values()):
            details = ", ".join(
                f"{count} {reason.replace('_', ' ')}{'s' if count > 1 else ''}"
                for reason, count in counts.items()
                if count
            )
            line += f"; skipped {sum(counts.values())}: {details}"
        return line


class NoUsableExamplesError(InvalidInput):
    """Every row was skipped, so there is nothing to train or evaluate on."""


def validate_examples(examples, num_threads=8, progress=True):
    """(usable examples in their original order, SkipReport).

    Each distinct image file is checked once, in num_threads threads; an image
    problem takes precedence over an empty caption when a row has both.
    """
    paths = list(dict.fromkeys(example.image_path for example in examples))
    show_progress = progress and len(paths) > _PROGRESS_BAR_MIN_IMAGES
    with concurrent.futures.ThreadPoolExecutor(max_workers=num_threads) as pool:
        results = pool.map(image_problem, paths)
        bar = progress_bar(results, total=len(paths), desc="checking images", unit="image", disable=not show_progress)
        problems = dict(zip(paths, bar, strict=True))
    kept = []
    skipped = collections.Counter()
    for example in examples:
        reason = problems[example.image_path] or caption_problem(example.caption)
        if reason:
            skipped[reason] += 1
        else:
            kept.append(example)
    return kept, SkipReport(total=len(examples), kept=len(kept), **skipped)


def require_usable(examples, report, what="training"):
    """Fail with the skip summary when validation left nothing for `what`."""
    if not examples:
        raise NoUsableExamplesError(f"no usable examples for {what}: {report.summary()}")


def image_problem(path):
    """The skip reason for an image file, or None when TensorFlow can decode it."""
    if not os.path.isfile(path):
        return "missing_image"
    return image_data_problem(path)


def image_data_problem(source):
    """The skip reason for an image given as a path or a binary file object (io.BytesIO of bytes read through
    another filesystem), or None when TensorFlow can decode it."""
    try:
        with Image.open(source) as image:
            if image.format not in _TF_DECODABLE_FORMATS:
                return "unsupported_format"
            image.verify()  # checks e.g. PNG chunk checksums
        # verify() does not read JPEG, GIF or BMP pixel data, so a truncated
        # download would pass it and then fail in tf.io.decode_image; decoding
        # (JPEG at 1/8 scale, which is cheap) catches that.
        if hasattr(source, "seek"):
            source.seek(0)
        with Image.open(source) as image:
            image.draft(image.mode, (1, 1))
            image.load()
    except Exception:  # PIL raises many exception types on corrupt data
        return "unreadable_image"
    return None


def caption_problem(caption):
    # captioning.data.text.normalize turns Unicode punctuation (\pP) into spaces; a caption
    # of only punctuation and spaces would have no words. Checked in Python so that
    # validation does not need TensorFlow.
    if all(char.isspace() or unicodedata.category(char).startswith("P") for char in caption):
        return "empty_caption"
    return None
