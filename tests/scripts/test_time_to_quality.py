"""scripts/time_to_quality.py: the steps at which each kind, and every kind at once, first reached the pass mark,
read from the curves runs logged."""

import json
from pathlib import Path

from tests.helpers import run_script


def write_curve(run_dir: Path, points) -> None:
    (run_dir / "ckpt").mkdir(parents=True)
    curve = {"seed": 2024, "scenes": 100, "score": "log_likelihood", "pass": 0.95, "points": points}
    (run_dir / "ckpt" / "hard_negatives.json").write_text(json.dumps(curve))


def point(step, color, between):
    return {"step": step, "accuracy": {"color": color, "between": between}, "pairs": {"color": 100, "between": 14}}


def time_to_quality(*args):
    return run_script("scripts/time_to_quality.py", *args)


def test_each_run_gets_the_first_step_per_kind_and_for_every_kind_at_once(tmp_path):
    write_curve(tmp_path / "slow", [point(500, 0.96, 0.5), point(1000, 0.94, 0.97), point(1500, 0.99, 0.98)])
    write_curve(tmp_path / "never", [point(500, 0.99, 0.9), point(1000, 0.99, 0.93)])
    run = time_to_quality(tmp_path / "slow", tmp_path / "never" / "ckpt" / "hard_negatives.json")
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert "| run | scenes (seed) | between | color | every kind at once | last step |" in lines
    assert f"| {tmp_path / 'slow'} | 100 (2024) | 1000 | 500 | 1500 | 1500 |" in lines
    assert f"| {tmp_path / 'never' / 'ckpt' / 'hard_negatives.json'} | 100 (2024) | - | 500 | - | 1000 |" in lines
    assert f"| {tmp_path / 'slow'} | 0.980 (14) | 0.990 (100) |" in lines

    stricter = time_to_quality(tmp_path / "slow", "--pass_mark", "0.98")
    assert f"| {tmp_path / 'slow'} | 100 (2024) | 1500 | 1500 | 1500 | 1500 |" in stricter.stdout.splitlines()


def test_a_run_without_a_curve_is_one_line_and_exit_2(tmp_path):
    run = time_to_quality(tmp_path)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.strip().splitlines() == [
        f"error: {tmp_path}: no hard_negatives.json (train with --hard_negatives_every, or name the file)"
    ]


def test_a_truncated_curve_is_one_line_naming_the_file_and_exit_2(tmp_path):
    write_curve(tmp_path, [point(500, 0.96, 0.5)])
    curve = tmp_path / "ckpt" / "hard_negatives.json"
    curve.write_text(curve.read_text()[:40])
    run = time_to_quality(tmp_path)
    assert run.returncode == 2 and run.stdout == ""
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(f"error: {curve}: not a hard-negative curve: ")

    curve.write_text(json.dumps({"points": []}))  # JSON, but not a curve
    run = time_to_quality(curve)
    assert run.returncode == 2
    assert run.stderr.strip() == f"error: {curve}: not a hard-negative curve: no seed, scenes and points"
