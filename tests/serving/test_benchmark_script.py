"""scripts/benchmark_serving.py's load generator, briefly, against an in-process server."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark_serving.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("benchmark_serving", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_load_measures_every_request_without_errors(benchmark, start_server, fake_export):
    request = benchmark.predict_request(benchmark.random_png(16))
    with start_server(fake_export) as server:
        latencies, errors, wall = benchmark.run_load(server.grpc_port, 4, 0.5, request)
    assert errors == 0
    assert len(latencies) >= 4 and all(0 < latency <= wall for latency in latencies)
