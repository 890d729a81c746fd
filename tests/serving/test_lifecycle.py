"""Server lifecycle: ports open only once a model is loaded, loopback by default, clean SIGTERM."""

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import pytest

from captioning.inference.tensors import string_array
from captioning.util.local_ports import wait_for_port
from serving.model_registry import single_model_config
from serving.server import ModelServer, ServerOptions
from tests.fake_model import export_fake_model

REPO = Path(__file__).resolve().parents[2]


def is_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def outward_address():
    """This machine's address on its default route, or None (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 9))
        except OSError:
            return None
        address = sock.getsockname()[0]
    return None if address.startswith("127.") else address


def waiting_server(base_path, free_port):
    """A ModelServer on fixed free ports (gRPC, REST) over `base_path`, not started."""
    configs = [single_model_config("captioner", str(base_path))]
    return ModelServer(
        ServerOptions(
            model_configs=configs, port=free_port(), rest_api_port=free_port(), file_system_poll_wait_seconds=0.1
        )
    )


def test_ports_open_only_once_a_version_is_loaded(tmp_path, free_port, grpc_stubs, predict_request, png):
    server = waiting_server(tmp_path, free_port)
    ports = (server.options.port, server.options.rest_api_port)
    with futures.ThreadPoolExecutor(1) as pool:
        started = pool.submit(server.start)
        time.sleep(1.0)  # several polls of the empty base path
        assert not started.done()
        assert not any(is_open(port) for port in ports)
        export_fake_model(str(tmp_path), 1)
        assert started.result(timeout=60)
    try:
        assert all(is_open(port) for port in ports)
        # The first request after the port opens is answered: nothing is still loading.
        stubs = grpc_stubs(server.grpc_port)
        request = predict_request({"image_bytes": string_array([png()]), "text": string_array(["a dog"])})
        assert stubs.prediction.Predict(request, timeout=30).model_spec.version.value == 1
        stubs.channel.close()
    finally:
        server.stop()


def test_stop_while_waiting_for_a_model_never_opens_the_ports(tmp_path, free_port):
    server = waiting_server(tmp_path, free_port)
    with futures.ThreadPoolExecutor(1) as pool:
        started = pool.submit(server.start)
        time.sleep(0.3)
        server.request_stop()  # what SIGTERM does
        assert started.result(timeout=10) is False
    server.stop()
    assert not is_open(server.options.port) and not is_open(server.options.rest_api_port)


def test_binds_to_loopback_by_default(start_server, fake_export):
    address = outward_address()
    if address is None:
        pytest.skip("no non-loopback address to probe")
    with start_server(fake_export) as server:
        for port in (server.grpc_port, server.rest_port):
            assert is_open(port)
            assert not is_open(port, host=address)


def test_sigterm_finishes_in_flight_requests_and_exits_0(
    tmp_path, fake_export, free_port, grpc_stubs, predict_request, png
):
    port, rest_port = free_port(), free_port()
    log = open(tmp_path / "server.log", "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serving.server",
            f"--model_base_path={fake_export}",
            f"--port={port}",
            f"--rest_api_port={rest_port}",
            # A lone request waits this long for a batch to fill: it stays in flight.
            "--batch_timeout_micros=2000000",
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    try:
        wait_for_port(port, process, timeout_seconds=120)
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
