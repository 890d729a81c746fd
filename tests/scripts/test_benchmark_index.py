"""scripts/benchmark_index.py at a tiny size on the fake model: every table comes out, with sane figures."""

import re

from tests.fake_model import export_fake_model
from tests.helpers import run_script


def test_every_part_prints_its_table(tmp_path):
    export_fake_model(str(tmp_path / "export"), 1)
    run = run_script(
        "scripts/benchmark_index.py",
        "--model_dir",
        str(tmp_path / "export"),
        "--real_images",
        "40",
        "--vectors",
        "400",
        "--million",
        "500",
        "--queries",
        "5",
        "--local_queries",
        "3",
        "--feature_queries",
        "2",
        "--ef",
        "64",
        "--lever_vectors",
        "600",
        "--work_dir",
        str(tmp_path),
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    for heading in (
        "Levers at 600 clustered vectors",
        "Indexing 40 unseen synthetic images",
        "Stage 1 alone",
        "Whole query",
        "Before / after on the same 400 points",
        "Stage 2 from cached features",
        "Stage 1 at 500 clustered vectors",
        "Writes: 500 points",
        "Whole query at 500 images",
    ):
        assert heading in out
    # Exact search finds exactly what a numpy scan finds.
    assert re.search(r"\| exact \| [\d.]+ \| [\d.]+ \| 1\.000 \| 1\.000 \| 1\.000 \|", out)  # rows and images
    assert re.search(r"\| float16 \| \d+ KB \| [\d.]+ \| [\d.]+ \|", out)
    assert "| HNSW, ef 64 |" in out
    # Every lever has its rows (timed against the numpy scan, recall against it), the chosen settings theirs.
    for change in ("as before", "HNSW m", "ef_construct", "binary codes", "int8 codes"):
        assert re.search(rf"\| {change} \| m \d+, ef_construct \d+, ef \d+[^|]* \|( [\d.]+ \|){{5}} -?\d+ \|", out)
    assert re.search(r"\| ef 128, rescore x2 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| 1\.000 \|", out)
    assert re.search(r"\n\| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| 1\.000 \|\n", out)  # whole query
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith("benchmark_")] == []  # cleaned up


def test_levers_can_be_chosen_by_name_and_a_wrong_name_is_refused(tmp_path):
    command = ["scripts/benchmark_index.py", "--parts", "levers", "--lever_vectors", "300"]
    common = ["--queries", "5", "--work_dir", tmp_path]
    run = run_script(*command, *common, "--levers", "as before")
    assert run.returncode == 0, run.stderr
    changes = re.findall(r"^\| ([a-z0-9 ]+) \| m \d+", run.stdout, re.M)
    assert changes and set(changes) == {"as before"}
    wrong = run_script(*command, *common, "--levers", "as before,int9 codes")
    assert wrong.returncode == 1 and wrong.stderr.strip() == "error: --levers: no lever named int9 codes"
