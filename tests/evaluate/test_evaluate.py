"""Evaluation: recall@k on hand-made score matrices, the choice of alpha, COCO caption metrics, and the report
on a real-format dataset and on synthetic scenes (the CLI, which stores the chosen alpha with the model)."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from captioning.data import scene_captions, synthetic
from captioning.evaluate import evaluation
from captioning.export import layout
from captioning.inference import ranking
from captioning.inference.runners import LocalModel

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_recall_with_one_caption_per_image():
    matrix = np.array([[5.0, 1.0, 0.0], [6.0, 2.0, 1.0], [0.0, 3.0, 4.0]])
    # Text 0 is beaten by image 1 and text 1 by image 2; image 1 prefers text 0 to its own.
    assert evaluation.recall_at_k(matrix, 1) == {
        "text_to_image": pytest.approx(1 / 3),
        "image_to_text": pytest.approx(2 / 3),
    }
    assert evaluation.recall_at_k(matrix, 2) == {"text_to_image": 1.0, "image_to_text": 1.0}


def test_recall_with_several_captions_per_image_and_ties():
    matrix = np.array([[1.0, 5.0, 4.0, 0.0], [2.0, 8.0, 3.0, 7.0]])
    text_image = [0, 0, 1, 1]
    # text->image: texts 0, 1 and 2 each lose to the other image (2 > 1, 8 > 5, 4 > 3); text 3 wins.
    # image->text: image 0's text 1 ranks first; image 1's best own text (7) is behind text 1 (8).
    assert evaluation.recall_at_k(matrix, 1, text_image) == {"text_to_image": 0.25, "image_to_text": 0.5}
    assert evaluation.recall_at_k(matrix, 2, text_image) == {"text_to_image": 1.0, "image_to_text": 1.0}
    tied = np.zeros((2, 4))
    assert evaluation.recall_at_k(tied, 1, text_image) == {"text_to_image": 1.0, "image_to_text": 1.0}


def prior_dominated(num_images):
    """Text 0 is short and common (prior -2, the others -20): log_likelihood ranks it first for every image."""
    prior = np.full(num_images, -20.0)
    prior[0] = -2.0
    pmi = np.where(np.eye(num_images, dtype=bool), 3.0, 0.0)
    return {"log_likelihood": prior[None, :] + pmi, "pmi": pmi}


def test_alpha_is_the_smallest_that_removes_a_dominating_prior():
    matrices = prior_dominated(10)
    assert evaluation.recall_at_k(matrices["log_likelihood"], 1)["image_to_text"] == 0.1
    choice = evaluation.choose_alpha(matrices, np.arange(10))
    # Own text wins for images 1-9 once 3 - 20 (1 - alpha) > -2 (1 - alpha), i.e. alpha > 5/6.
    assert choice["alpha"] == 0.9 and choice["val_image_to_text_R@1"]["0.9"] == 1.0
    assert (choice["wins"], choice["losses"]) == (9, 0) and choice["p_value"] == pytest.approx(2 / 2**9)
    assert choice["helps"]
    report = evaluation.retrieval_report({**matrices, "mean_log_prob": matrices["log_likelihood"]}, None, 0.9)
    assert report["debiased"]["R@1"]["image_to_text"] == 1.0


def test_alpha_does_not_help_when_the_gain_could_be_luck():
    choice = evaluation.choose_alpha(prior_dominated(4), np.arange(4))  # 3 wins, 0 losses: p = 0.25
    assert choice["alpha"] == 0.9 and not choice["helps"]
    pmi = np.where(np.eye(4, dtype=bool), 3.0, 0.0)
    choice = evaluation.choose_alpha({"log_likelihood": pmi - 5.0, "pmi": pmi}, np.arange(4))
    assert (choice["alpha"], choice["helps"], choice["wins"]) == (0.0, False, 0)


def test_sign_test():
    assert evaluation.sign_test(0, 0) == 1.0
    assert evaluation.sign_test(3, 1) == pytest.approx(0.625)
    assert evaluation.sign_test(0, 6) == evaluation.sign_test(6, 0) == pytest.approx(2 / 64)


REFERENCES = [
    ["a red circle", "there is a red circle"],
    ["a blue square on the left", "a small blue square"],
    ["a green star above a gray cross", "two objects"],
]


def test_caption_metrics_come_from_pycocoevalcap(monkeypatch):
    perfect = evaluation.caption_metrics([refs[0] for refs in REFERENCES], REFERENCES)
    assert perfect["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    if shutil.which("java"):  # METEOR's Java scorer takes seconds to start: run it once
        assert perfect["METEOR"] == pytest.approx(1.0, abs=1e-3)
    monkeypatch.setattr(evaluation.shutil, "which", lambda name: None)
    poor = evaluation.caption_metrics(["a cross", "a cross", "a cross"], REFERENCES)
    for name in ("BLEU-4", "ROUGE-L", "CIDEr"):
        assert perfect[name] > poor[name], name
    assert poor["METEOR"] is None and "Java" in poor["note"]
    table = evaluation.markdown_report(
        {
            "images": 3,
            "texts": 3,
            "alpha": {"alpha": 1.0, "helps": False, "note": "-"},
            "retrieval": {"pmi": evaluation.recall_table(np.eye(3), None)},
            "captions": {**poor, "beam_size": 1, "images": 3},
        }
    )
    assert "| n/a |" in table and "METEOR unavailable" in table


@pytest.fixture()
def model_copy(tiny_export_dir, tmp_path):
    """The tiny model copied, so storing an alpha does not change the shared fixture other tests use."""
    shutil.copytree(tiny_export_dir, tmp_path / "export")
    return str(tmp_path / "export")


def test_dataset_report_with_alpha_from_the_val_split(model_copy, tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation.shutil, "which", lambda name: None)  # METEOR's start-up is tested above
    rows = []
    for i, scene in enumerate(synthetic.generate_scenes(12, seed=5)):
        synthetic.render_scene(scene, 32).save(tmp_path / f"{i}.png")
        split = "val" if i < 6 else "test"
        captions = scene_captions.describe_scene(scene, np.random.default_rng(i), 2)
        rows += [(f"{i}.png", caption, split) for caption in captions]
    with open(tmp_path / "pairs.csv", "w", newline="") as f:
        csv.writer(f).writerows([("image_path", "caption", "split"), *rows])
    report = evaluation.evaluate_dataset(
        LocalModel(model_copy), "csv", str(tmp_path / "pairs.csv"), None, "test", retrieval_images=5, beam_size=1
    )
    assert (report["images"], report["texts"]) == (5, 10)
    assert report["alpha"]["val_images"] == 5 and report["alpha"]["alpha"] in evaluation.ALPHAS
    assert set(report["retrieval"]) == {"log_likelihood", "mean_log_prob", "pmi", "debiased", "contrastive"}
    for table in report["retrieval"].values():
        assert set(table) == {"R@1", "R@5", "R@10"}
        assert table["R@10"]["text_to_image"] == table["R@10"]["image_to_text"] == 1.0  # 5 images: all in top 10
    assert {"BLEU-4", "METEOR", "ROUGE-L", "CIDEr"} <= set(report["captions"])
    assert "| score | text→image R@1 |" in evaluation.markdown_report(report)
    with pytest.raises(ValueError, match="no usable 'train'"):
        evaluation.evaluate_dataset(LocalModel(model_copy), "csv", str(tmp_path / "pairs.csv"), None, "train", 5, 0)


def test_synthetic_cli_reports_everything_and_stores_alpha(model_copy, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "captioning.evaluate",
            "--model_dir",
            model_copy,
            "--num_images",
            "40",
            "--retrieval_images",
            "6",
            "--beam_size",
            "0",
            "--held_out_combinations",
            "red:star",
            "--output_json",
            str(tmp_path / "report.json"),
            "--output_markdown",
            str(tmp_path / "report.md"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert {"hard_negatives", "held_out", "retrieval", "alpha"} <= set(report) and "captions" not in report
    # Every kind, old and new, for every score, the contrastive one included.
    assert set(report["hard_negatives"]) == {
        "color",
        "shape",
        "size",
        "relation",
        "binding",
        "relation3",
        "between",
        "count",
        "binding3",
    }
    for kind in report["hard_negatives"].values():
        assert {"log_likelihood", "mean_log_prob", "pmi", "debiased", "contrastive"} < set(kind), kind
    assert report["held_out"]["combinations"] == ["red:star"]
    assert {"color", "shape", "size"} <= set(report["held_out"]["hard_negatives"])
    assert "Held-out colour-shape combinations (red:star)" in (tmp_path / "report.md").read_text()
    stored = ranking.read_ranking(os.path.join(model_copy, "1", layout.EXTRA_FILES_DIR, layout.RANKING_FILE))
    assert stored["alpha"] == report["alpha"]["alpha"] and stored["use_by_default"] == report["alpha"]["helps"]
    assert stored["p_value"] == report["alpha"]["p_value"]


def test_hard_negatives_measure_the_same_through_a_server(tiny_export_dir):
    """The evaluation calls a model only through the runner protocol, so a served model gives the local numbers."""
    from captioning.inference.runners import RemoteModel
    from tests.serving.conftest import MODEL, running_server

    scenes = synthetic.generate_scenes(12, seed=5)
    local = evaluation.hard_negative_accuracy(LocalModel(tiny_export_dir), scenes, 32, seed=5, alpha=0.5)
    with running_server(tiny_export_dir) as server:
        remote = RemoteModel(f"127.0.0.1:{server.grpc_port}", MODEL)
        assert evaluation.hard_negative_accuracy(remote, scenes, 32, seed=5, alpha=0.5) == local
    assert {"color", "shape", "size"} <= set(local) and all(kind["pairs"] for kind in local.values())
