"""scripts/soak_search.py's workload, briefly: concurrent adds and searches, no errors, every add findable."""
import importlib.util
from pathlib import Path

from serving.server import SearchOptions

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak_search.py"


def test_concurrent_adds_and_searches(start_server, fake_export, tmp_path):
    spec = importlib.util.spec_from_file_location("soak_search", SCRIPT)
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    with start_server(fake_export, search=SearchOptions(str(tmp_path / "index"))) as server:
        base_url = f"http://127.0.0.1:{server.rest_port}"
        report = soak.soak(base_url, clients=8, seconds=4)
        assert report["errors"] == []
        assert len(report["added"]) >= 8 and report["requests"] > len(report["added"])
        assert soak.missing_after(base_url, report["added"]) == []
