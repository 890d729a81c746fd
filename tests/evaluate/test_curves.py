"""Time-to-quality curves: hard-negative accuracy by kind measured on the model being trained."""

import json

import numpy as np

from captioning.data import synthetic
from captioning.evaluate import curves
from captioning.evaluate.evaluation import hard_negative_accuracy
from captioning.inference.local import SavedModelScorer
from captioning.training.artifacts import load_trained_model
from tests.helpers import train_model


def test_the_curve_measures_the_live_model_as_its_export_would(tiny_model, tiny_export_dir, tmp_path):
    model, vocabulary = tiny_model
    lines = []
    curve = curves.HardNegativeCurve(str(tmp_path), every=100, num_scenes=12, seed=7, log=lines.append)
    curve(model, vocabulary, 100)
    exported = hard_negative_accuracy(
        SavedModelScorer(tiny_export_dir), synthetic.generate_scenes(12, 7), model.config.image_size, 7
    )
    measured = curve.points[-1]["accuracy"]
    assert set(measured) == set(exported) and len(measured) >= 5  # every kind the scenes hold
    np.testing.assert_allclose(
        [measured[k] for k in exported], [exported[k][curves.SCORE] for k in exported], atol=1e-4
    )
    assert len(lines) == 1 and lines[0].startswith("hard negatives at step 100 (12 scenes of seed 7): ")


def test_a_run_logs_its_curve_every_n_steps_and_says_when_each_kind_first_passed(tmp_path, monkeypatch):
    monkeypatch.setattr(curves, "PASS", 0.0)  # every kind passes at the first measurement: when is what is tested
    lines = []
    curve = curves.HardNegativeCurve(str(tmp_path / "ckpt"), every=12, num_scenes=6, seed=7, log=lines.append)
    train_model(tmp_path, after_checkpoint=curve)  # 12 steps, a checkpoint every 6: measured at 12 only, once
    with open(tmp_path / "ckpt" / curves.CURVE_FILE) as f:
        saved = json.load(f)
    assert [p["step"] for p in saved["points"]] == [12] and saved["seed"] == 7
    assert len(lines) == 1 and "first at 0.0 or more: " in lines[0] and lines[0].endswith("every kind at 0.0 or more")
    kinds = set(saved["points"][0]["accuracy"])
    assert curve.crossed() == {kind: 12 for kind in kinds} and curve.every_kind_passed() == 12

    # A resumed run reads the curve back: a step already measured is not measured again, a later one is.
    resumed = curves.HardNegativeCurve(str(tmp_path / "ckpt"), every=12, num_scenes=6, seed=7, log=lines.append)
    assert resumed.crossed() == curve.crossed()
    model, vocabulary = load_trained_model(str(tmp_path))
    resumed(model, vocabulary, 12)
    assert len(lines) == 1
    resumed(model, vocabulary, 24)
    assert len(lines) == 2 and "first at" not in lines[1] and "every kind" not in lines[1]  # nothing new passed
    assert [p["step"] for p in resumed.points] == [12, 24]


def test_time_to_quality_is_the_first_step_at_which_every_kind_passed_at_once(tmp_path):
    curve = curves.HardNegativeCurve(str(tmp_path), every=100, num_scenes=1, seed=7)
    curve.points = [
        {"step": 100, "accuracy": {"color": 0.96, "count": 0.5}},
        {"step": 200, "accuracy": {"color": 0.94, "count": 0.97}},  # each kind has passed, not both at once
        {"step": 300, "accuracy": {"color": 0.95, "count": 0.99}},
    ]
    assert curve.crossed() == {"color": 100, "count": 200}
    assert curve.every_kind_passed() == 300
    curve.points = curve.points[:2]
    assert curve.every_kind_passed() is None
