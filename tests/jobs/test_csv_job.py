"""Batch scoring: rows keep their order, bad rows get an error instead of stopping the job, each distinct image
is encoded once, and the numbers are serving_default's and score_matrix's."""

import csv
import pathlib
import re

import numpy as np
import pytest
from PIL import Image

from captioning.inference import batch
from captioning.inference.rows import run_in_batches
from captioning.inference.runners import InvalidInputError, open_model
from captioning.jobs.csv_job import SCORE_COLUMNS, run_csv_job, score_columns
from captioning.jobs.pairs_csv import CsvError, read_pairs_csv
from tests.helpers import write_image

CAPTIONS = [
    "a red circle",
    "a small green square on the left",
    "two objects: a blue star and a gray cross",
    "a large yellow triangle above a purple circle",
]


class CountingModel:
    """Passes calls through and records how many images each encode_image call carried."""

    def __init__(self, model):
        self.model, self.encoded = model, []

    def run(self, name, inputs):
        if name == "encode_image":
            self.encoded.append(len(inputs["image_bytes"]))
        return self.model.run(name, inputs)


@pytest.fixture(scope="module")
def model(tiny_export_dir):
    return open_model(tiny_export_dir)


@pytest.fixture(scope="module")
def pairs_csv(tmp_path_factory, sample_images):
    """A CSV with relative and absolute image paths, an extra column, and four bad rows among good ones."""
    directory = tmp_path_factory.mktemp("pairs")
    paths, _ = sample_images
    write_image(directory / "red.png", color=(220, 20, 20))
    (directory / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    rows = [
        ("red.png", CAPTIONS[0]),
        (paths[0], CAPTIONS[1]),
        ("missing.png", CAPTIONS[0]),
        (paths[1], CAPTIONS[2]),
        ("red.png", "  ?! "),
        (paths[2], CAPTIONS[3]),
        ("corrupt.jpg", CAPTIONS[0]),
        (paths[0], CAPTIONS[3]),
        ("red.png", CAPTIONS[1]),
        ("", CAPTIONS[2]),
    ]
    path = directory / "pairs.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "image_path", "caption"])
        writer.writerows((i, image, caption) for i, (image, caption) in enumerate(rows))
    return str(path)


EXPECTED_ERRORS = {2: "missing image", 4: "empty caption", 6: "unreadable image", 9: "missing image"}


def test_csv_rows_keep_their_order_and_bad_rows_get_an_error(model, pairs_csv, tmp_path):
    output, figures = tmp_path / "scored.csv", [str(tmp_path / "captions.jpg"), str(tmp_path / "matrix.jpg")]
    pairs = read_pairs_csv(pairs_csv)
    summary = run_csv_job(model, pairs, str(output), "debiased", 0.5, *figures, progress=False)
    with open(output, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["id"] for row in rows] == [str(i) for i in range(10)]
    for i, row in enumerate(rows):
        if i in EXPECTED_ERRORS:
            assert row["error"].startswith(EXPECTED_ERRORS[i]) and row["log_likelihood"] == ""
        else:
            assert row["error"] == "" and float(row["log_likelihood"]) < 0
            expected = float(row["log_likelihood"]) - 0.5 * float(row["prior_log_likelihood"])
            assert float(row["debiased"]) == pytest.approx(expected, abs=1e-4)
    assert (summary.rows, summary.errors, summary.images_encoded) == (10, 4, 4)
    assert "6 of 10 pairs" in summary.line() and "pairs/s" in summary.line() and "peak memory" in summary.line()
    assert summary.figures == figures
    for path in figures:
        with Image.open(path) as image:
            assert image.format == "JPEG" and min(image.size) > 200


def test_scores_equal_serving_default_and_each_image_is_encoded_once(model, pairs_csv):
    pairs = read_pairs_csv(pairs_csv)
    paths, captions = pairs.image_paths(), pairs.captions()
    counting = CountingModel(model)
    scored = batch.score_pairs(counting, paths, captions, batch_size=2, progress=False)
    assert sum(counting.encoded) == scored.images_encoded == 4  # red.png, three samples; not one per row
    good = [i for i, error in enumerate(scored.errors) if not error]
    expected = run_in_batches(
        model,
        "serving_default",
        {"image_bytes": [batch.read_bytes(paths[i]) for i in good], "text": [captions[i] for i in good]},
    )
    for name, values in expected.items():
        np.testing.assert_allclose(scored.scores[name][good], values, rtol=1e-5, atol=1e-5, err_msg=name)


def test_likelihood_only_skips_the_prior_columns_and_keeps_the_likelihoods(model, pairs_csv, tmp_path):
    pairs = read_pairs_csv(pairs_csv)
    full = batch.score_pairs(model, pairs.image_paths(), pairs.captions(), progress=False)
    fast = batch.score_pairs(model, pairs.image_paths(), pairs.captions(), progress=False, likelihood_only=True)
    assert fast.errors == full.errors and "prior_log_likelihood" not in fast.scores
    for name, values in fast.scores.items():
        np.testing.assert_allclose(values, full.scores[name], rtol=1e-5, atol=1e-5, err_msg=name)
    run_csv_job(model, pairs, str(tmp_path / "scored.csv"), progress=False, likelihood_only=True)
    with open(tmp_path / "scored.csv", newline="") as f:
        assert "pmi" not in next(csv.reader(f))
    with pytest.raises(ValueError, match="needs the prior"):
        run_csv_job(model, pairs, str(tmp_path / "x.csv"), "pmi", progress=False, likelihood_only=True)


def test_matrix_equals_pairwise_scores(model, sample_images):
    paths, _ = sample_images
    image_bytes = [batch.read_bytes(path) for path in paths]
    matrix = batch.score_matrix(model, image_bytes, CAPTIONS, images_per_call=2, texts_per_call=3)
    every_pair = batch.score_pairs(model, [p for p in paths for _ in CAPTIONS], CAPTIONS * len(paths), progress=False)
    for name in ("log_likelihood", "mean_log_prob", "pmi"):
        assert matrix[name].shape == (len(paths), len(CAPTIONS))
        np.testing.assert_allclose(matrix[name].ravel(), every_pair.scores[name], rtol=1e-5, atol=1e-4)


class RefusesSomeImages:
    """A model that cannot decode the bytes b"bad", as TF's decoder refuses what PIL let through."""

    def run(self, name, inputs):
        if b"bad" in inputs["image_bytes"]:
            raise InvalidInputError("Unknown image file format")
        return {"image_features": np.ones((len(inputs["image_bytes"]), 2, 3), np.float32)}


def test_an_image_the_model_cannot_decode_costs_only_its_own_rows():
    features = batch.encode_images(RefusesSomeImages(), [b"a", b"bad", b"c"], batch_size=2)
    assert [f is None for f in features] == [False, True, False]


def test_a_csv_without_the_columns_is_refused(tmp_path):
    path = tmp_path / "wrong.csv"
    path.write_text("path,text\nx.png,a cat\n")
    with pytest.raises(CsvError, match="image_path,caption"):
        read_pairs_csv(str(path))
    with pytest.raises(CsvError, match="no such file"):
        read_pairs_csv(str(tmp_path / "absent.csv"))


def test_a_spreadsheet_csv_with_a_byte_order_mark_reads_like_training_data(tmp_path):
    path = tmp_path / "from_excel.csv"
    path.write_bytes("\ufeffimage_path,caption,source\nx.png,a cat\ny.png\n".encode("utf-8"))
    pairs = read_pairs_csv(str(path))
    assert pairs.fields == ["image_path", "caption", "source"]
    assert pairs.captions() == ["a cat", ""]  # the short row's empty caption becomes an error row, not a crash
    assert pairs.image_paths() == [str(tmp_path / "x.png"), str(tmp_path / "y.png")]


class EchoModel:
    """Returns its text input as the output, recording each call's row count."""

    def __init__(self):
        self.calls = []

    def run(self, name, inputs):
        self.calls.append((len(inputs["text"]), inputs["scale"]))
        return {"echo": np.array(inputs["text"]) * inputs["scale"]}


def test_signatures_run_in_batches_a_server_accepts_and_keep_row_order():
    from captioning.inference.rows import MAX_ROWS_PER_CALL, run_in_batches

    model = EchoModel()
    outputs = run_in_batches(model, "echo", {"text": list(range(2 * MAX_ROWS_PER_CALL + 2))}, scale=3)
    assert model.calls == [(MAX_ROWS_PER_CALL, 3), (MAX_ROWS_PER_CALL, 3), (2, 3)]
    np.testing.assert_array_equal(outputs["echo"], np.arange(2 * MAX_ROWS_PER_CALL + 2) * 3)


def test_the_score_columns_are_in_the_order_the_reference_gives():
    reference = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "reference.md").read_text(encoding="utf-8")
    listed = re.search(r"then the score columns in\s+this order: (.*?)`contrastive`", reference, re.S).group(1)
    assert tuple(re.findall(r"`(\w+)`", listed)) == SCORE_COLUMNS  # `--likelihood_only` is no column name
    assert score_columns(likelihood_only=False, contrastive=True, debiased=True) == [
        *SCORE_COLUMNS,
        "contrastive",
        "debiased",
    ]
    assert "pmi" not in score_columns(likelihood_only=True, contrastive=False, debiased=False)
