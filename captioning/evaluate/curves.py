"""Time-to-quality: hard-negative accuracy by kind on a small set of development scenes, measured during training.

Every `every` steps (at the first checkpoint at or after each multiple) the model being trained scores each scene's
true caption against its hard negatives (evaluation.hard_negative_accuracy, with the caption log-likelihood, the
score a user gets), one line is logged, and the curve is kept in `ckpt/hard_negatives.json`. The first step at which
each kind reached PASS is logged once and kept, so a run says when it learnt what; so is the first step at which
every kind was at PASS at once, the run's time-to-quality.

The scenes come from a development seed (2024 by default): never tune on the evaluation seeds.
"""

import json
import os

from captioning.data import synthetic
from captioning.util import atomic
from captioning.util.errors import InvalidInput

PASS = 0.95
SCORE = "log_likelihood"
CURVE_FILE = "hard_negatives.json"


def read_curve(path: str) -> dict:
    """A curve file as written: {"seed", "scenes", "score", "pass", "points": [{"step", "accuracy", "pairs"}]}."""
    with open(path, encoding="utf-8") as f:
        try:
            curve = json.load(f)
        except ValueError as error:  # a truncated or foreign file
            raise InvalidInput(f"{path}: not a hard-negative curve: {error}") from None
    if not isinstance(curve, dict) or not {"seed", "scenes", "points"} <= curve.keys():
        raise InvalidInput(f"{path}: not a hard-negative curve: no seed, scenes and points")
    return curve


def first_passes(points: list, threshold: float = None) -> dict:
    """kind -> the first measured step at which its accuracy was at least the threshold (PASS)."""
    threshold = PASS if threshold is None else threshold
    first = {}
    for point in points:
        for kind, accuracy in point["accuracy"].items():
            if accuracy >= threshold:
                first.setdefault(kind, point["step"])
    return first


def every_kind_passed(points: list, threshold: float = None):
    """The first measured step at which every kind was at least the threshold (PASS) at once, or None."""
    threshold = PASS if threshold is None else threshold
    return next((p["step"] for p in points if min(p["accuracy"].values()) >= threshold), None)


class HardNegativeCurve:
    """Called by the trainer after each checkpoint: `curve(model, vocabulary, step)`. Only the chief measures."""

    def __init__(self, run_dir: str, every: int, num_scenes: int = 100, seed: int = 2024, log=print):
        self.path, self.every, self.seed, self.log = os.path.join(run_dir, CURVE_FILE), every, seed, log
        self.scenes = synthetic.generate_scenes(num_scenes, seed)
        self.points = self._load()
        self._scorer = None

    def _load(self) -> list:
        return read_curve(self.path)["points"] if os.path.exists(self.path) else []

    def crossed(self) -> dict:
        return first_passes(self.points)

    def every_kind_passed(self):
        return every_kind_passed(self.points)

    def __call__(self, model, vocabulary, step: int) -> None:
        measured = self.points[-1]["step"] if self.points else 0
        if step // self.every <= measured // self.every:
            return
        # Imported here: reading a curve (scripts/time_to_quality.py) needs no TensorFlow.
        from captioning.evaluate.evaluation import hard_negative_accuracy
        from captioning.export.saved_model import ScoringModule
        from captioning.inference.local import ModuleScorer

        if self._scorer is None:  # traced once; it reads the live weights at every call
            self._scorer = ModuleScorer(ScoringModule(model, vocabulary))
        before, quality_before = self.crossed(), self.every_kind_passed()
        results = hard_negative_accuracy(self._scorer, self.scenes, model.config.image_size, self.seed)
        self.points = [p for p in self.points if p["step"] < step] + [
            {
                "step": step,
                "accuracy": {kind: round(r[SCORE], 4) for kind, r in results.items()},
                "pairs": {kind: r["pairs"] for kind, r in results.items()},
            }
        ]
        atomic.write_text(
            self.path,
            json.dumps(
                {"seed": self.seed, "scenes": len(self.scenes), "score": SCORE, "pass": PASS, "points": self.points},
                indent=1,
            ),
        )
        accuracy = self.points[-1]["accuracy"]
        new = [kind for kind in self.crossed() if kind not in before]
        self.log(
            f"hard negatives at step {step} ({len(self.scenes)} scenes of seed {self.seed}): "
            + ", ".join(f"{kind} {value:.3f}" for kind, value in accuracy.items())
            + (f"; first at {PASS} or more: {', '.join(new)}" if new else "")
            + (f"; every kind at {PASS} or more" if quality_before is None and self.every_kind_passed() else "")
        )
