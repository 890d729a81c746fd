"""`get_similarity_score.py --server` prints the scores local scoring prints (CLI subprocesses, real model)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from serving.model_registry import single_model_config

REPO = Path(__file__).resolve().parents[2]
# Not the CLI's default name, so the test also shows --model_name reaches the server.
MODEL_NAME = "scorer"
TEXTS = ["a red circle", "there is a small blue square on the left"]


def score(*flags):
    texts = [arg for text in TEXTS for arg in ("--text", text)]
    result = subprocess.run(
        [sys.executable, "get_similarity_score.py", "--json", *texts, *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def server(start_server, tiny_export_dir):
    with start_server(model_configs=[single_model_config(MODEL_NAME, tiny_export_dir)]) as server:
        yield server


def test_remote_scores_equal_local_scores(server, tiny_export_dir, sample_images):
    image_path = sample_images[0][1]  # the JPEG
    local = score(f"--image_path={image_path}", f"--model_dir={tiny_export_dir}")
    remote = score(
        f"--image_path={image_path}",
        f"--server=127.0.0.1:{server.grpc_port}",
        f"--model_name={MODEL_NAME}",
        "--signature=serving_default",
    )
    assert [row.pop("text") for row in remote["results"]] == [row.pop("text") for row in local["results"]]
    for remote_row, local_row in zip(remote["results"], local["results"]):
        assert remote_row.keys() == local_row.keys()
        assert remote_row == pytest.approx(local_row, rel=1e-5, abs=1e-5)
