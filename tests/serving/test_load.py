"""Sustained concurrent load, and a burst of bad requests that must not hurt the server."""

import base64
import os
import socket
import threading
from concurrent import futures

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from captioning.inference.tensors import string_array

CLIENTS = 8
REQUESTS_PER_CLIENT = 200
# A small request limit, so the burst can hold oversized requests without sending gigabytes.
MAX_REQUEST_BYTES = 2**20
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"


@pytest.fixture(scope="module")
def server(start_server, fake_export):
    with start_server(fake_export, max_request_bytes=MAX_REQUEST_BYTES) as server:
        yield server


@pytest.fixture(scope="module")
def good_request(png, predict_request):
    return predict_request({"image_bytes": string_array([png()]), "text": string_array(["a dog"])})


def test_concurrent_clients_get_no_errors(server, grpc_stubs, good_request, decode_outputs):
    expected = None
    errors = []
    lock = threading.Lock()

    def client():
        nonlocal expected
        stubs = grpc_stubs(server.grpc_port)  # one channel per client, like separate processes
        try:
            for _ in range(REQUESTS_PER_CLIENT):
                try:
                    result = decode_outputs(stubs.prediction.Predict(good_request, timeout=60))
                except grpc.RpcError as error:
                    with lock:
                        errors.append(f"{error.code()}: {error.details()}")
                    continue
                with lock:
                    expected = expected or result
                np.testing.assert_allclose(result["log_likelihood"], expected["log_likelihood"])
        finally:
            stubs.channel.close()

    with futures.ThreadPoolExecutor(CLIENTS) as pool:
        for done in [pool.submit(client) for _ in range(CLIENTS)]:
            done.result()
    assert errors == []


def test_server_stays_healthy_after_a_burst_of_bad_requests(
    server, grpc_stubs, rest, png, good_request, predict_request
):
    stubs = grpc_stubs(server.grpc_port)
    image = string_array([png()])
    bad_requests = [
        predict_request({"image_bytes": string_array([b"corrupt"]), "text": string_array(["a"])}),
        predict_request({"image_bytes": image, "text": string_array([""])}),
        predict_request({"image_bytes": np.array([1.5], np.float32), "text": string_array(["a"])}),
        predict_request({"image_bytes": image}),
        predict_request({"image_bytes": image, "text": string_array(["a"])}, signature="nope"),
    ]

    oversized = predict_request({"image_bytes": string_array([b"x" * MAX_REQUEST_BYTES]), "text": string_array(["a"])})
    # Bytes that do not parse as a PredictRequest, sent past the stub's serializer.
    raw_predict = stubs.channel.unary_unary(PREDICT_METHOD)

    def send(request):
        call = raw_predict if isinstance(request, bytes) else stubs.prediction.Predict
        with pytest.raises(grpc.RpcError) as raised:
            call(request, timeout=30)
        return raised.value.code()

    with futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, (bad_requests + [oversized, b"\xff\xff\xff"]) * 20))
    # Unparsable messages get INTERNAL, as from any gRPC server (C++ TF Serving too).
    assert set(codes) == {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
    }

    junk_json = {"instances": [{"image_bytes": {"b64": base64.b64encode(b"x").decode()}, "text": 1}]}
    for body in (b"{not json", junk_json, os.urandom(256)):
        assert rest(server.rest_port, "POST", "/v1/models/captioner:predict", body)[0] == 400
    # Only the headers of an oversized body go out: the server answers 413 without reading the body, so a client
    # still sending it could hit a closed connection instead of reading the answer.
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/models/captioner:predict HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Length: {MAX_REQUEST_BYTES + 1}\r\n\r\n".encode()
        )
        assert sock.makefile("rb").readline().split()[1] == b"413"
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
            sock.sendall(os.urandom(512))

    health = stubs.health.Check(health_pb2.HealthCheckRequest(), timeout=30)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert stubs.prediction.Predict(good_request, timeout=30).outputs["log_likelihood"].float_val
    assert rest(server.rest_port, "GET", "/v1/models/captioner")[0] == 200
    stubs.channel.close()
