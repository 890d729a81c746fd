"""get_similarity_score.py prints exactly the SavedModel's scores and rejects bad input with one line, exit 2."""

import json

import numpy as np
import pytest

from captioning.export.signatures import SIGNATURES
from captioning.inference.local import SavedModelScorer
from tests.helpers import run_script


def run_cli(*args):
    return run_script("get_similarity_score.py", *args)


def test_printed_scores_are_the_saved_models(tiny_export_dir, sample_images):
    image_path = sample_images[0][0]
    texts = ["a red circle", "a large blue square on the left", "a gray star"]
    result = run_cli(
        "--image_path",
        image_path,
        "--model_dir",
        tiny_export_dir,
        "--json",
        *[arg for text in texts for arg in ("--text", text)],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(result.stdout)["results"]
    with open(image_path, "rb") as f:
        expected = SavedModelScorer(tiny_export_dir).score([f.read()] * len(texts), texts)
    assert [row["log_likelihood"] for row in rows] == sorted(expected["log_likelihood"].tolist(), reverse=True)
    for row in rows:
        i = texts.index(row["text"])
        for name in ("log_likelihood", "mean_log_prob", "perplexity", "prior_log_likelihood", "pmi"):
            np.testing.assert_allclose(row[name], expected[name][i], rtol=1e-6, atol=1e-6, err_msg=name)
        assert row["num_tokens"] == expected["num_tokens"][i]


def test_rank_by_contrastive_orders_texts_by_the_contrastive_score(tiny_export_dir, sample_images):
    texts = ["a red circle", "a large blue square on the left", "a gray star", "two objects"]
    result = run_cli(
        "--image_path",
        sample_images[0][0],
        "--model_dir",
        tiny_export_dir,
        "--json",
        "--rank_by",
        "contrastive",
        *[arg for text in texts for arg in ("--text", text)],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    values = [row["contrastive"] for row in json.loads(result.stdout)["results"]]
    assert len(values) == 4 and values == sorted(values, reverse=True) and all(-1 <= v <= 1 for v in values)


def test_plain_output_names_every_score(tiny_export_dir, sample_images):
    result = run_cli("--image_path", sample_images[0][0], "--model_dir", tiny_export_dir, "--text", "a red circle")
    assert result.returncode == 0, result.stderr[-2000:]
    for name in SIGNATURES["serving_default"].output_names():
        assert name in result.stdout


def test_attention_figure_is_drawn_for_one_text(tmp_path, tiny_export_dir, sample_images):
    from PIL import Image

    figure = tmp_path / "attention.png"
    result = run_cli(
        "--image_path",
        sample_images[0][0],
        "--model_dir",
        tiny_export_dir,
        "--text",
        "a red circle",
        "--attention_figure",
        str(figure),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "log_likelihood" in result.stdout
    with Image.open(figure) as image:
        assert image.width > 4 * image.height / 2  # one panel per token ("a", "red", "circle", [end]) and the image
    two_texts = run_cli(
        "--image_path",
        sample_images[0][0],
        "--model_dir",
        tiny_export_dir,
        "--text",
        "a red circle",
        "--text",
        "a blue star",
        "--attention_figure",
        str(tmp_path / "two.png"),
    )
    assert two_texts.returncode == 2 and "exactly one --text" in two_texts.stderr


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "no such file"),
        ("not_an_image", "not a readable image"),
        ("empty_text", "has no words"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(case, expected, tmp_path, tiny_export_dir, sample_images):
    image_path, text = sample_images[0][0], "a red circle"
    if case == "missing":
        image_path = str(tmp_path / "nowhere.png")
    elif case == "not_an_image":
        image_path = str(tmp_path / "notes.png")
        (tmp_path / "notes.png").write_text("this is text, not pixels")
    else:
        text = "  ... "
    result = run_cli("--image_path", image_path, "--text", text, "--model_dir", tiny_export_dir)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and expected in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_a_missing_model_is_a_clear_error(tmp_path, sample_images):
    result = run_cli("--image_path", sample_images[0][0], "--text", "a red circle", "--model_dir", str(tmp_path))
    assert result.returncode == 2
    assert "no exported SavedModel" in result.stderr and "Traceback" not in result.stderr
