"""`python -m serving.server` as a subprocess: ports open once loaded, clean SIGTERM."""
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import pytest

from serving.tensors import string_array

REPO = Path(__file__).resolve().parents[2]


def wait_for_port(port, process, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "server exited during startup"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"port {port} never opened")


def test_sigterm_finishes_in_flight_requests_and_exits_0(tmp_path, fake_export, free_port, grpc_stubs,
                                                         predict_request, png):
    port, rest_port = free_port(), free_port()
    log = open(tmp_path / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "serving.server", f"--model_base_path={fake_export}",
         f"--port={port}", f"--rest_api_port={rest_port}",
         # A lone request waits this long for a batch to fill: it stays in flight.
         "--batch_timeout_micros=2000000"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    try:
        wait_for_port(port, process)
        stubs = grpc_stubs(port)
        request = predict_request({"image_bytes": string_array([png()]), "text": string_array(["a dog"])})
        with futures.ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(stubs.prediction.Predict, request, timeout=60)
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            assert in_flight.result().model_spec.version.value == 1
        assert process.wait(timeout=60) == 0
        stubs.channel.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
