"""scripts/benchmark_gallery.py at a tiny size: the table comes out, thumbnails moving far fewer bytes."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_gallery_benchmark_prints_its_table():
    result = subprocess.run(
        [
            sys.executable,
            "scripts/benchmark_gallery.py",
            "--images",
            "12",
            "--width",
            "640",
            "--height",
            "480",
            "--repeats",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {
        name.strip(): float(size)
        for name, size in re.findall(r"^(\w[\w ,():]+?)\s+[\d.]+\s+([\d.]+)\s+[\d.]+x$", result.stdout, re.MULTILINE)
    }
    assert set(rows) == {
        "gallery listing (JSON of every image)",
        "every thumbnail, from the cache",
        "every thumbnail, made on first request",
        "every original file",
        "first screen: a page of 24 and its thumbnails",
    }
    assert rows["every thumbnail, from the cache"] < rows["every original file"] / 5
    assert "thumbnail cache on disk" in result.stdout
