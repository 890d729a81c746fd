"""The fixed entry point `python -m captioning.search`, run as a user runs it, and kill -9 during indexing."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from captioning.search.index import ImageIndex
from tests.helpers import CHILD_TIMEOUT
from tests.search.conftest import colour_png

REPO = Path(__file__).resolve().parents[2]


def cli(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "captioning.search", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        **kwargs,
    )


def test_add_files_folders_csvs_and_urls_then_search_as_json(tmp_path, search_export, colour_folder, file_server):
    index_dir = str(tmp_path / "index")
    common = ["--index_dir", index_dir, "--model_dir", search_export]
    with file_server({"/web.png": (200, {}, colour_png((10, 10, 10)))}) as base:
        csv_path = tmp_path / "more.csv"
        csv_path.write_text(f"url\n{base}/web.png\n")
        refused = cli("add", *common, str(tmp_path / "images"), str(csv_path))
        assert refused.returncode == 1, refused.stderr
        assert "web.png: host 127.0.0.1 is a private, loopback or link-local address" in refused.stderr
        assert "indexed 8 new images (0 already in, 1 with errors)" in refused.stdout
        assert "images/s" in refused.stdout
        allowed = cli("add", *common, "--allow_private_urls", f"{base}/web.png", colour_folder["red"])
        assert allowed.returncode == 0, allowed.stderr
        assert "indexed 1 new images (1 already in, 0 with errors)" in allowed.stdout

    found = cli("search", *common, "--k", "5", "--json", "a red star left of a blue cross")
    assert found.returncode == 0, found.stderr
    results = json.loads(found.stdout)
    assert len(results) == 5
    assert all({"id", "source", "contrastive", "log_likelihood"} <= set(row) for row in results)
    assert [row["log_likelihood"] for row in results] == sorted((r["log_likelihood"] for r in results), reverse=True)


def test_list_count_delete_and_bad_input_in_process(tmp_path, search_export, colour_folder, capsys):
    from captioning.search.__main__ import main

    common = ["--index_dir", str(tmp_path / "index"), "--model_dir", search_export]
    assert main(["add", *common, colour_folder["red"], colour_folder["blue"]]) == 0
    capsys.readouterr()
    assert main(["list", *common, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(row["source"] for row in listed) == sorted([colour_folder["red"], colour_folder["blue"]])
    assert main(["delete", *common, listed[0]["id"]]) == 0
    assert main(["count", *common]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1"
    assert main(["search", *common, "   "]) == 2
    assert capsys.readouterr().err.strip() == "error: the query has no words to search for"
    assert main(["add", *common, str(tmp_path / "missing.png")]) == 2
    assert "missing.png: no such file, folder or URL" in capsys.readouterr().err
    assert main(["reindex", *common]) == 2
    assert "nothing to re-index" in capsys.readouterr().err


def test_kill_9_while_indexing_leaves_no_half_entry_and_a_rerun_continues(tmp_path, search_export):
    folder = tmp_path / "many"
    folder.mkdir()
    total = 600
    for n in range(total):
        Image.new("RGB", (8, 8), (n % 256, (n // 256) * 40, 7)).save(folder / f"{n:04d}.png")
    index_dir = tmp_path / "index"
    args = [
        sys.executable,
        "-m",
        "captioning.search",
        "add",
        "--index_dir",
        str(index_dir),
        "--model_dir",
        search_export,
        "--batch_size",
        "4",
        str(folder),
    ]
    process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        stored = list((index_dir / "images").rglob("*")) if (index_dir / "images").exists() else []
        if sum(path.is_file() for path in stored) >= 40:
            break
        time.sleep(0.05)
    assert process.poll() is None, "indexing finished before it could be killed: make the folder bigger"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    index = ImageIndex(str(index_dir))
    try:
        entries = dict(index.all_entries(1))
        assert 0 < len(entries) < total
        for payload in entries.values():  # every entry is whole: its image and features are there
            assert index.store.image(payload["sha256"])
            assert index.store.features(1, [payload["sha256"]]) is not None
    finally:
        index.close()

    rerun = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert rerun.returncode == 0, rerun.stderr
    assert f"({len(entries)} already in, 0 with errors)" in rerun.stdout
    index = ImageIndex(str(index_dir))
    try:
        assert index.count(1) == total
    finally:
        index.close()


def test_push_names_what_is_wrong_in_one_line(tmp_path, search_export, colour_folder, capsys):
    from captioning.search.__main__ import main

    index_dir = str(tmp_path / "index")
    unreachable = "http://127.0.0.1:1"
    assert main(["push", "--index_dir", index_dir, "--qdrant_url", unreachable]) == 2
    assert capsys.readouterr().err.strip() == f"error: {index_dir} holds no images to push"
    assert main(["add", "--index_dir", index_dir, "--model_dir", search_export, colour_folder["red"]]) == 0
    capsys.readouterr()
    assert main(["push", "--index_dir", index_dir, "--qdrant_url", unreachable, "--model_version", "7"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {index_dir} holds no images of model version 7"
    assert main(["push", "--index_dir", index_dir, "--qdrant_url", unreachable]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: Qdrant server {unreachable}:") and "refused" in error and "\n" not in error


def test_a_closed_pipe_ends_list_quietly(tmp_path, search_export, colour_folder):
    """`python -m captioning.search list ... | head -1`: the reader has gone by the time the listing is written."""
    common = ["--index_dir", str(tmp_path / "index"), "--model_dir", search_export]
    assert cli("add", *common, colour_folder["red"], colour_folder["blue"]).returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        listed = subprocess.run(
            [sys.executable, "-m", "captioning.search", "list", *common],
            cwd=REPO,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=180,
        )
    finally:
        os.close(write_end)
    assert listed.stderr == ""
    assert listed.returncode == 141
