"""scripts/soak_search.py's workload, briefly: concurrent adds, deletes and searches of shared images, no errors,
and a consistent index afterwards."""

import importlib.util
from pathlib import Path

from serving.limits import SearchLimits
from serving.server import SearchOptions

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak_search.py"


def test_concurrent_adds_deletes_and_searches_leave_a_consistent_index(start_server, fake_export, tmp_path):
    spec = importlib.util.spec_from_file_location("soak_search", SCRIPT)
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    search = SearchOptions(str(tmp_path / "index"), limits=SearchLimits(max_results=200, max_candidates=256))
    with start_server(fake_export, search=search) as server:
        base_url = f"http://127.0.0.1:{server.rest_port}"
        report = soak.soak(base_url, clients=8, seconds=4, pool=24)
        assert report["errors"] == []
        answers = [answer for counts in report["answers"].values() for answer, n in counts.items() if n]
        assert {"201", "204"} <= set(answers)  # the workload did add and delete
        assert soak.problems_after(base_url, report) == []
