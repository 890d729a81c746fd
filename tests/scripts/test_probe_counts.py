"""scripts/probe_counts.py prints, for each form of a count caption, how often each score prefers it to the number
one off, and how often the best of all count captions is true; a wrong model folder is one line and exit code 2."""

import os
import re
import subprocess
import sys

from tests.helpers import CHILD_TIMEOUT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "probe_counts.py")


def test_every_form_of_count_caption_gets_a_row_of_win_rates(tiny_export_dir):
    result = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--model_dir",
            tiny_export_dir,
            "--num_scenes",
            "120",
            "--image_size",
            "32",
            "--num_ranked",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = re.findall(r"^\| (two|three) (COLOUR )?SHAPEs \| (\d+) \| (.+) \|$", result.stdout, re.MULTILINE)
    assert {(number, bool(colour)) for number, colour, _, _ in rows} == {
        ("two", True),
        ("two", False),
        ("three", True),
        ("three", False),
    }, result.stdout
    assert "| log_likelihood | pmi | contrastive | at the number | after it |" in result.stdout
    for _, _, pairs, rates in rows:
        assert int(pairs) > 0 and all(0 <= float(rate) <= 1 for rate in rates.split(" | "))
    best = re.search(r"^\| all \| 5 \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \|$", result.stdout, re.MULTILINE)
    assert best and all(0 <= float(rate) <= 1 for rate in best.groups()), result.stdout


def test_a_missing_model_folder_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, SCRIPT, "--model_dir", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert "model_dir" in result.stderr
