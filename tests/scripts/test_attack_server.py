"""scripts/attack_server.py end to end on the fake model, with two quick attacks: it starts the server, replays
them and prints the table."""

import subprocess
import sys
from pathlib import Path

from tests.fake_model import export_fake_model
from tests.helpers import CHILD_TIMEOUT

REPO = Path(__file__).resolve().parents[2]


def test_the_attack_driver_prints_the_table(tmp_path):
    export_fake_model(str(tmp_path / "export"), 1)
    result = subprocess.run(
        [
            sys.executable,
            "scripts/attack_server.py",
            f"--model_base_path={tmp_path / 'export'}",
            "--only",
            "Host:,offset,without the token",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split(" | ")[0].strip("| "): line for line in result.stdout.splitlines()[2:]}
    assert set(rows) == {
        "Host: attacker.example (DNS rebinding)",
        "GET /api/images?offset=abc",
        "DELETE without the token (token configured)",
    }
    assert "| 400 host 'attacker.example'" in rows["Host: attacker.example (DNS rebinding)"]
    assert "| 400 offset 'abc'" in rows["GET /api/images?offset=abc"]
    assert "| 401 " in rows["DELETE without the token (token configured)"]
