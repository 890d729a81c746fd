"""get_similarity_score.py as people run it: the --csv job locally and against a server, figures, --generate,
--labels, the single-image mode, and one-line errors with exit code 2."""

import csv
import json
import os

import numpy as np
import pytest

from tests.helpers import run_script

CAPTIONS = ["a red circle", "a small green square on the left", "a blue star above a gray cross"]


def run_cli(*args):
    return run_script("get_similarity_score.py", *args)


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def pairs_csv(tmp_path_factory, sample_images):
    """Every sample image with every caption (relative paths), then a row whose image is missing."""
    directory = tmp_path_factory.mktemp("cli_pairs")
    paths, _ = sample_images
    rows = []
    for path in paths:
        os.symlink(path, directory / os.path.basename(path))
        rows += [(os.path.basename(path), caption) for caption in CAPTIONS]
    rows.append(("gone.png", "a red circle"))
    with open(directory / "pairs.csv", "w", newline="") as f:
        csv.writer(f).writerows([("image_path", "caption"), *rows])
    return directory / "pairs.csv"


@pytest.fixture(scope="module")
def local_run(tiny_export_dir, pairs_csv, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("cli_out")
    result = run_cli(
        "--model_dir",
        tiny_export_dir,
        "--csv",
        pairs_csv,
        "--output",
        output_dir / "scored.csv",
        "--figures_dir",
        output_dir / "figures",
        "--rank_by",
        "pmi",
    )
    assert result.returncode == 0, result.stderr
    return result, output_dir


@pytest.fixture(scope="module")
def server(tiny_export_dir):
    from serving.model_registry import single_model_config
    from serving.server import ModelServer, ServerOptions

    server = ModelServer(
        ServerOptions(
            model_configs=[single_model_config("captioner", tiny_export_dir)],
            port=0,
            rest_api_port=None,
            file_system_poll_wait_seconds=60,
        )
    )
    assert server.start()
    yield f"127.0.0.1:{server.grpc_port}"
    server.stop()


def test_csv_job_writes_rows_in_order_with_errors_and_reports_speed_and_memory(local_run, pairs_csv):
    result, output_dir = local_run
    rows = read_rows(output_dir / "scored.csv")
    assert [(r["image_path"], r["caption"]) for r in rows] == [tuple(r.values()) for r in read_rows(pairs_csv)]
    assert [r["error"] for r in rows] == [""] * 9 + ["missing image"]
    assert "pairs/s" in result.stdout and "peak memory" in result.stdout and "3 distinct images" in result.stdout
    assert "scoring" in result.stderr  # the progress bar


def test_csv_job_draws_both_figures(local_run):
    _, output_dir = local_run
    for name in ("image_captions.jpg", "similarity_matrix.jpg"):
        path = output_dir / "figures" / name
        assert path.stat().st_size > 10_000
        assert path.read_bytes()[:2] == b"\xff\xd8"  # JPEG


def test_csv_job_against_a_server_gives_the_local_scores(local_run, pairs_csv, server, tmp_path):
    _, output_dir = local_run
    result = run_cli("--server", server, "--model_version", 1, "--csv", pairs_csv, "--output", tmp_path / "remote.csv")
    assert result.returncode == 0, result.stderr
    local, remote = read_rows(output_dir / "scored.csv"), read_rows(tmp_path / "remote.csv")
    assert [r["error"] for r in remote] == [r["error"] for r in local]
    for name in ("log_likelihood", "pmi", "num_tokens"):
        np.testing.assert_allclose(
            [float(r[name]) for r in remote[:9]],
            [float(r[name]) for r in local[:9]],
            rtol=1e-5,
            atol=1e-5,
            err_msg=name,
        )


def test_generate_prints_beams_best_first_through_the_server(server, sample_images):
    paths, _ = sample_images
    result = run_cli(
        "--server", server, "--image_path", paths[0], "--generate", "--beam_size", 3, "--max_length", 6, "--json"
    )
    assert result.returncode == 0, result.stderr
    captions = json.loads(result.stdout)["captions"]
    assert 1 <= len(captions) <= 3 and all(c["num_tokens"] <= 7 for c in captions)
    assert [c["log_likelihood"] for c in captions] == sorted((c["log_likelihood"] for c in captions), reverse=True)


def test_labels_are_ranked_and_texts_keep_the_single_image_mode(tiny_export_dir, sample_images, tmp_path):
    paths, _ = sample_images
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("blue star\nyellow triangle\n")
    result = run_cli(
        "--model_dir",
        tiny_export_dir,
        "--image_path",
        paths[0],
        "--labels",
        "red circle,green square",
        "--labels_file",
        labels_file,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    ranked = json.loads(result.stdout)
    assert ranked["rank_by"] == "log_likelihood"  # the tiny model has no stored alpha
    assert sorted(r["label"] for r in ranked["results"]) == [
        "blue star",
        "green square",
        "red circle",
        "yellow triangle",
    ]
    assert [r["prompt"] for r in ranked["results"] if r["label"] == "blue star"] == ["a blue star"]
    scores = [r["score"] for r in ranked["results"]]
    assert scores == sorted(scores, reverse=True)
    assert all(r["unknown_words"] == [] for r in ranked["results"])  # the default prompt's words are known
    # A label the model cannot read is flagged in the table and in --json.
    result = run_cli("--model_dir", tiny_export_dir, "--image_path", paths[0], "--labels", "red circle,zebra")
    assert result.returncode == 0, result.stderr
    assert "warning: the model does not know 'zebra'" in result.stdout and "confidence" in result.stdout
    result = run_cli("--model_dir", tiny_export_dir, "--image_path", paths[0], "--labels", "red circle,zebra", "--json")
    assert {r["label"]: r["unknown_words"] for r in json.loads(result.stdout)["results"]} == {
        "red circle": [],
        "zebra": ["zebra"],
    }


@pytest.mark.parametrize(
    "args, message",
    [
        (["--csv", "/no/such.csv", "--output", "/tmp/out.csv"], "/no/such.csv: no such file"),
        (["--csv", "x.csv"], "--csv needs --output"),
        (["--image_path", "x.png", "--text", "a cat", "--generate"], "choose one of"),
        (["--image_path", "/no/such.png", "--generate"], "no such file"),
        (
            ["--image_path", "/no/such.png", "--labels", "cat", "--figures_dir", "f"],
            "figures are drawn for a --csv job",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = run_cli("--model_dir", "/no/model", *args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_likelihood_only_ranks_texts_without_the_prior(tiny_export_dir, sample_images):
    paths, _ = sample_images
    texts = ["--text", "a red circle", "--text", "a green square on the left"]
    result = run_cli("--model_dir", tiny_export_dir, "--image_path", paths[0], *texts, "--likelihood_only", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["results"]
    assert [set(row) >= {"log_likelihood", "mean_log_prob"} and "pmi" not in row for row in rows] == [True, True]
    assert rows[0]["log_likelihood"] >= rows[1]["log_likelihood"]
    refused = run_cli(
        "--model_dir", tiny_export_dir, "--image_path", paths[0], *texts, "--likelihood_only", "--rank_by", "pmi"
    )
    assert refused.returncode == 2 and "--likelihood_only scores no prior" in refused.stderr
