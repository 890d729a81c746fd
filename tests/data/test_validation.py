import os

import numpy as np
import pytest
from PIL import Image

from captioning.data import validation
from captioning.data.examples import CaptionExample
from captioning.data.validation import NoUsableExamplesError, SkipReport, require_usable, validate_examples


def write_image(path, format=None):
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=format)
    return str(path)


def truncate(path):
    data = open(path, "rb").read()
    with open(path, "wb") as file:
        file.write(data[: len(data) // 2])
    return path


def random_bytes(path):
    path.write_bytes(np.random.default_rng(1).bytes(2048))
    return str(path)


def example(path, caption="A dog runs."):
    return CaptionExample(str(path), caption, os.path.basename(path))


@pytest.fixture
def images(tmp_path):
    return {
        "png": write_image(tmp_path / "ok.png"),
        "jpg": write_image(tmp_path / "ok.jpg"),
        "bmp": write_image(tmp_path / "ok.bmp"),
        "gif": write_image(tmp_path / "ok.gif"),
        "missing": str(tmp_path / "missing.jpg"),
        "corrupt": random_bytes(tmp_path / "corrupt.jpg"),
        "truncated_png": truncate(write_image(tmp_path / "truncated.png")),
        "truncated_jpg": truncate(write_image(tmp_path / "truncated.jpg")),
        "tiff": write_image(tmp_path / "photo.tiff"),
        "tiff_named_jpg": write_image(tmp_path / "really_tiff.jpg", format="TIFF"),
    }


@pytest.mark.parametrize(
    "name, reason",
    [
        ("missing", "missing_image"),
        ("corrupt", "unreadable_image"),
        ("truncated_png", "unreadable_image"),
        ("truncated_jpg", "unreadable_image"),
        ("tiff", "unsupported_format"),
        ("tiff_named_jpg", "unsupported_format"),
    ],
)
def test_each_bad_image_is_skipped_with_its_reason(images, name, reason):
    kept, report = validate_examples([example(images["png"]), example(images[name])], progress=False)
    assert kept == [example(images["png"])]
    assert report == SkipReport(total=2, kept=1, **{reason: 1})


@pytest.mark.parametrize("caption", ["", "   \t", "...", " ?! - ", "\u00ab\u2026\u00bb"])
def test_empty_and_punctuation_only_captions_are_skipped(images, caption):
    kept, report = validate_examples([example(images["png"], caption), example(images["png"])], progress=False)
    assert kept == [example(images["png"])]
    assert report == SkipReport(total=2, kept=1, empty_caption=1)


def test_good_rows_are_kept_in_order_and_summary_lists_only_nonzero_reasons(images):
    rows = [
        example(images["jpg"], "First."),
        example(images["missing"]),
        example(images["bmp"], "Second."),
        example(images["corrupt"]),
        example(images["png"], "..."),
        example(images["gif"], "Third."),
        example(images["truncated_png"]),
        example(images["jpg"], "Fourth."),
    ]
    kept, report = validate_examples(rows, num_threads=2, progress=False)
    assert [row.caption for row in kept] == ["First.", "Second.", "Third.", "Fourth."]
    assert report.summary() == "kept 4 of 8 rows; skipped 4: 1 missing image, 2 unreadable images, 1 empty caption"


def test_summary_when_nothing_is_skipped(images):
    _, report = validate_examples([example(images["jpg"]), example(images["png"])], progress=False)
    assert report.summary() == "kept 2 of 2 rows"


def test_summary_line():
    report = SkipReport(total=1000, kept=997, missing_image=1, unreadable_image=1, empty_caption=1)
    assert report.summary() == "kept 997 of 1000 rows; skipped 3: 1 missing image, 1 unreadable image, 1 empty caption"
    report = SkipReport(total=10, kept=7, unsupported_format=3)
    assert report.summary() == "kept 7 of 10 rows; skipped 3: 3 unsupported formats"


def test_image_problem_wins_over_empty_caption(images):
    _, report = validate_examples([example(images["missing"], "")], progress=False)
    assert report == SkipReport(total=1, kept=0, missing_image=1)


def test_each_distinct_image_is_checked_once(images, monkeypatch):
    checked = []
    monkeypatch.setattr(validation, "image_problem", lambda path: checked.append(path))
    validate_examples([example(images["jpg"], f"Caption {n}.") for n in range(5)], progress=False)
    assert checked == [images["jpg"]]


def test_progress_bar_only_for_many_images(images, monkeypatch, capsys):
    validate_examples([example(images["jpg"]), example(images["png"])])
    assert "checking images" not in capsys.readouterr().err
    monkeypatch.setattr(validation, "_PROGRESS_BAR_MIN_IMAGES", 1)
    validate_examples([example(images["jpg"]), example(images["png"])])
    assert "checking images" in capsys.readouterr().err


def test_require_usable(images):
    kept, report = validate_examples([example(images["missing"]), example(images["png"], "")], progress=False)
    with pytest.raises(
        NoUsableExamplesError,
        match="^no usable examples for validation: kept 0 of 2 rows; skipped 2: 1 missing image, 1 empty caption$",
    ):
        require_usable(kept, report, what="validation")
    require_usable([example(images["png"])], SkipReport(total=1, kept=1))


def test_no_usable_examples_error_is_a_value_error():
    assert issubclass(NoUsableExamplesError, ValueError)
