"""scripts/poor_match.py on the fake model: every kind of query gets its rows against the server's default cut-off,
with the share the page would mark poor."""

import re

from captioning.search.retrieval import POOR_MATCH_MEAN_LOG_PROB
from tests.fake_model import export_fake_model
from tests.helpers import run_script


def test_each_kind_of_query_gets_its_rows_against_the_servers_cut_off(tmp_path):
    export_fake_model(str(tmp_path / "export"), 1)
    run = run_script("scripts/poor_match.py", "--model_dir", tmp_path / "export", "--images", "6")
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"the server's default cut-off {POOR_MATCH_MEAN_LOG_PROB}" in run.stdout
    rows = re.findall(r"^\| ([a-z' ]+) \| (\d+) \| mean_log_prob \|(?: -?[\d.]+ \|){5} (\d+)% \|$", run.stdout, re.M)
    assert [(name, int(count)) for name, count, _ in rows] == [
        ("a collected scene's full caption", 6),
        ("one object of a collected scene", 6),
        ("outside the world", 20),
    ]
    # The fake model's log-likelihood per token is -(1 + brightness): never under the cut-off.
    assert [share for _, _, share in rows] == ["0", "0", "0"]
    assert len(re.findall(r"^\| \| \| cosine \|", run.stdout, re.M)) == 3
