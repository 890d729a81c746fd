"""scripts/benchmark_index.py at a tiny size on the fake model: every table comes out, with sane figures."""

import re
import subprocess
import sys
from pathlib import Path

from tests.fake_model import export_fake_model

REPO = Path(__file__).resolve().parents[2]


def test_every_part_prints_its_table(tmp_path):
    export_fake_model(str(tmp_path / "export"), 1)
    run = subprocess.run(
        [sys.executable, "scripts/benchmark_index.py", "--model_dir", str(tmp_path / "export"), "--real_images", "40",
         "--vectors", "400", "--million", "500", "--queries", "5", "--local_queries", "3", "--feature_queries", "2",
         "--ef", "64", "--work_dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    for heading in ("Indexing 40 unseen synthetic images", "Stage 1 alone", "Whole query", "Before / after on the "
                    "same 400 points", "Stage 2 from cached features", "Stage 1 at 500 clustered vectors"):
        assert heading in out
    # Exact search finds exactly what a numpy scan finds.
    assert re.search(r"\| exact \| [\d.]+ \| [\d.]+ \| 1\.000 \| 1\.000 \|", out)
    assert re.search(r"\| float16 \| \d+ KB \| [\d.]+ \| [\d.]+ \|", out)
    assert "| HNSW, ef 64 |" in out and "| Edge HNSW, ef 64 |" in out
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith("benchmark_")] == []  # cleaned up
