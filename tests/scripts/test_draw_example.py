"""scripts/draw_example.py, the quickstart's last step: a two-object scene, its true caption beside the relation
reversed and one colour changed (natural words, no repeated object), and with a model what the scores read and
what to try next."""

import os
import subprocess
import sys

from captioning.data import synthetic
from tests.helpers import CHILD_TIMEOUT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "draw_example.py")


def draw(*arguments):
    result = subprocess.run(
        [sys.executable, SCRIPT, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def differing_words(a: str, b: str) -> list:
    return [(x, y) for x, y in zip(a.split(), b.split()) if x != y]


def test_three_captions_that_differ_in_one_thing(tmp_path):
    true, relation, colour = draw("--output", str(tmp_path / "example.png")).splitlines()
    assert " and " not in true and "," not in true  # a relation between two objects, not a list
    assert len(true.split()) == len(relation.split()) == len(colour.split())
    ((said, reversed_),) = differing_words(true, relation)
    assert synthetic.INVERSE_RELATION[said] == reversed_
    ((before, after),) = differing_words(true, colour)
    assert before in synthetic.COLORS and after in synthetic.COLORS
    assert os.path.getsize(tmp_path / "example.png") > 0


def test_with_a_model_it_scores_them_and_says_what_to_try_next(tmp_path):
    from tests.fake_model import export_fake_model

    export_fake_model(str(tmp_path / "export"), 1)
    image = str(tmp_path / "example.png")
    text = draw("--output", image, "--model_dir", str(tmp_path / "export"))
    heading, table, reading, commands = text.split("\n\n")
    assert heading.startswith(f"{image}, a scene the model has not seen")
    assert [line.rsplit("(", 1)[1] for line in table.splitlines()[1:]] == [
        "true)",
        "relation reversed)",
        "colour changed)",
    ]
    assert reading.startswith("log_likelihood is log P(text | image)")
    assert "relation reversed" in reading and "colour changed" in reading
    lines = commands.strip().splitlines()
    assert lines[0] == "Next, try:" and 3 <= len(lines) - 1 <= 4
    assert all(line.strip().startswith(".venv/bin/python ") and image in line for line in lines[1:])
