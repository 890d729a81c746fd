"""Zero-shot labels and the choice of ranking score: prompts, label files, debiasing with the stored alpha."""

import numpy as np
import pytest

from captioning.export import layout
from captioning.inference import ranking, zero_shot
from captioning.inference.batch import read_bytes
from captioning.inference.rows import run_in_batches
from captioning.inference.runners import open_model

LABELS = ["red circle", "green square", "blue star", "yellow triangle"]


def test_labels_come_from_the_list_and_the_file_in_order_once(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("blue star\n\n  dog \nred circle\n")
    assert zero_shot.read_labels(["red circle", " cat"], str(path)) == ["red circle", "cat", "blue star", "dog"]


@pytest.mark.parametrize(
    "labels, labels_file, message",
    [
        ([], None, "at least one label"),
        (["", " "], None, "at least one label"),
        (["cat", "?!"], None, "no words"),
        ([], "/no/such/labels.txt", "cannot read labels file"),
    ],
)
def test_unusable_labels_are_refused(labels, labels_file, message):
    with pytest.raises(zero_shot.LabelsError, match=message):
        zero_shot.read_labels(labels, labels_file)


def test_prompts_need_one_placeholder():
    assert zero_shot.prompts(["cat"], "there is a {} here") == ["there is a cat here"]
    for template in ("a photo", "{} and {}"):
        with pytest.raises(zero_shot.LabelsError, match="exactly one"):
            zero_shot.prompts(["cat"], template)


def test_debiased_runs_from_log_likelihood_to_pmi():
    log_likelihood, pmi = np.array([-10.0, -4.0]), np.array([1.0, -0.5])
    np.testing.assert_allclose(ranking.debiased(log_likelihood, pmi, 0.0), log_likelihood)
    np.testing.assert_allclose(ranking.debiased(log_likelihood, pmi, 1.0), pmi)
    prior = log_likelihood - pmi
    np.testing.assert_allclose(ranking.debiased(log_likelihood, pmi, 0.3), log_likelihood - 0.3 * prior)


@pytest.mark.parametrize(
    "rank_by, alpha, stored, expected",
    [
        ("auto", None, None, ("log_likelihood", 1.0)),
        ("auto", None, {"alpha": 0.4, "use_by_default": False}, ("log_likelihood", 0.4)),
        ("auto", None, {"alpha": 0.4, "use_by_default": True}, ("debiased", 0.4)),
        ("auto", 0.7, None, ("debiased", 0.7)),
        ("pmi", None, {"alpha": 0.4, "use_by_default": True}, ("pmi", 0.4)),
        ("debiased", None, None, ("debiased", 1.0)),
    ],
)
def test_auto_ranking_debiases_only_when_evaluation_said_it_helps(rank_by, alpha, stored, expected):
    assert ranking.resolve(rank_by, alpha, stored) == expected


def test_ranking_file_round_trip(tmp_path):
    path = str(tmp_path / layout.EXTRA_FILES_DIR / layout.RANKING_FILE)
    assert ranking.read_ranking(path) is None
    ranking.write_ranking(path, 0.3, True, {"val_images": 100})
    assert ranking.read_ranking(path) == {"alpha": 0.3, "use_by_default": True, "val_images": 100}


def test_labels_are_ranked_best_first_by_the_scores_of_their_prompts(tiny_export_dir, sample_images):
    model = open_model(tiny_export_dir)
    paths, _ = sample_images
    image_bytes = [read_bytes(path) for path in paths[:2]]
    results = zero_shot.rank_labels(model, image_bytes, LABELS, "there is a {}", "debiased", 0.5)
    for image, rows in zip(image_bytes, results):
        assert [row["score"] for row in rows] == sorted((row["score"] for row in rows), reverse=True)
        assert sorted(row["label"] for row in rows) == sorted(LABELS)
        scores = run_in_batches(
            model, "serving_default", {"image_bytes": [image] * len(rows), "text": [row["prompt"] for row in rows]}
        )
        np.testing.assert_allclose([row["log_likelihood"] for row in rows], scores["log_likelihood"], atol=1e-4)
        expected = scores["log_likelihood"] - 0.5 * scores["prior_log_likelihood"]
        np.testing.assert_allclose([row["score"] for row in rows], expected, atol=1e-4)
        # Relative confidence: the softmax of the ranking scores, in their order, summing to 1.
        confidence = [row["confidence"] for row in rows]
        assert confidence == sorted(confidence, reverse=True) and sum(confidence) == pytest.approx(1.0)
        assert confidence[0] / confidence[1] == pytest.approx(np.exp(rows[0]["score"] - rows[1]["score"]), rel=1e-4)
        assert all(row["unknown_words"] == [] for row in rows)  # every word is one of the scenes' captions'
    # "photo" and "zebra" are not: the labels whose prompts hold them say so.
    flagged = zero_shot.rank_labels(model, image_bytes[:1], ["red circle", "zebra"], "a photo of a {}")[0]
    assert {row["label"]: row["unknown_words"] for row in flagged} == {
        "red circle": ["photo"],
        "zebra": ["photo", "zebra"],
    }


def test_unknown_words_are_found_as_the_model_splits_words():
    known = {"a", "red", "circle", "left", "of"}
    assert zero_shot.unknown_words(["a Red-circle", "a photo of a zebra", "a photo, a photo"], known) == [
        [],
        ["photo", "zebra"],
        ["photo"],
    ]
    np.testing.assert_allclose(zero_shot.softmax(np.array([[-1000.0, -1000.0 - np.log(3)]])), [[0.75, 0.25]])
