"""Hostile and careless clients against the server on loopback (docs/serving.md, "Limits and security"): each attack of
scripts/attack_server.py, on the fake model with small limits, so every one is answered quickly with a 4xx naming
the limit, the trust boundary holds, and concurrent adds, deletes and searches of one image stay consistent."""

import base64
import concurrent.futures
import contextlib
import dataclasses
import io
import queue
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import numpy as np
import pytest
from PIL import Image
from tensorflow.core.framework import types_pb2

from captioning.inference.tensors import TensorSize
from serving import json_tensors
from serving.limits import RequestLimits, SearchLimits
from serving.servable import Signature
from serving.server import SearchOptions
from serving.status import ServingError
from serving.web.connections import ConnectionLimits
from tests.helpers import CHILD_TIMEOUT, animated_gif, dripping_server
from tests.search.conftest import colour_png

pytestmark = pytest.mark.timeout(120)
MODEL = "captioner"
LIMITS = RequestLimits(
    max_matrix_pairs=2048,
    max_beam_size=4,
    max_caption_length=12,
    max_caption_hypotheses=8,
    max_request_pixels=3_000_000,
)
SEARCH_LIMITS = SearchLimits(
    max_results=20,
    max_candidates=32,
    max_labels=10,
    max_texts=100,
    max_upload_bytes=256 * 1024,
    url_timeout_seconds=1.0,
    max_concurrent_fetches=2,
)
MAX_REQUEST_BYTES = 1 << 20
MAX_JSON_BYTES = 600 << 10


@pytest.fixture(scope="module")
def model_runs():
    """The names of the signatures the model ran, in order: a refusal by the limits must add none. (Set up
    before the server, whose batchers keep the signatures' run methods.)"""
    runs = []
    run = Signature.run

    def counted(self, inputs):
        runs.append(self.name)
        return run(self, inputs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Signature, "run", counted)
        yield runs


@pytest.fixture(scope="module")
def server(model_runs, start_server, fake_export, tmp_path_factory):
    search = SearchOptions(str(tmp_path_factory.mktemp("hostile_index")), allow_private_urls=True, limits=SEARCH_LIMITS)
    with start_server(
        fake_export, search=search, limits=LIMITS, max_request_bytes=MAX_REQUEST_BYTES, max_json_bytes=MAX_JSON_BYTES
    ) as server:
        yield server


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=f"http://127.0.0.1:{server.rest_port}", timeout=30) as client:
        yield client


def add(http, data, **headers):
    return http.post("/api/images", files={"file": ("image.png", data, "image/png")}, headers=headers)


def predict(http, signature, inputs):
    return http.post(f"/v1/models/{MODEL}:predict", json={"signature_name": signature, "inputs": inputs})


def b64(data):
    return {"b64": base64.b64encode(data).decode()}


def assert_refused(response, status, *words):
    assert response.status_code == status, response.text
    message = response.json()["error"]
    for word in words:
        assert word in message, message


# ---------------------------------------------------------------------------------------------------------------
# What one request may cost.


def test_generate_caption_beam_size_and_max_length_are_bounded(http, server, model_runs, grpc_stubs, predict_request):
    image = b64(colour_png("red"))
    runs = len(model_runs)
    assert_refused(
        predict(
            http,
            "generate_caption",
            {"image_bytes": [image], "beam_size": 5000, "max_length": 0, "length_penalty": 0.0},
        ),
        400,
        "5000",
        "--max_beam_size",
    )
    assert_refused(
        predict(
            http,
            "generate_caption",
            {"image_bytes": [image], "beam_size": 2, "max_length": 100000, "length_penalty": 0.0},
        ),
        400,
        "--max_caption_length",
    )
    assert model_runs[runs:] == []  # refused before the model ran
    ok = predict(
        http, "generate_caption", {"image_bytes": [image], "beam_size": 4, "max_length": 0, "length_penalty": 0.0}
    )
    assert ok.status_code == 200, ok.text
    assert model_runs[runs:] == ["generate_caption"]
    assert_refused(
        predict(
            http,
            "generate_caption",
            {"image_bytes": [image] * 3, "beam_size": 4, "max_length": 0, "length_penalty": 0.0},
        ),
        400,
        "12 hypotheses",
        "--max_caption_hypotheses",
    )
    stubs = grpc_stubs(server.grpc_port)
    request = predict_request(
        {
            "image_bytes": np.array([colour_png("red")], object),
            "beam_size": np.int32(5000),
            "max_length": np.int32(0),
            "length_penalty": np.float32(0),
        },
        signature="generate_caption",
    )
    with pytest.raises(grpc.RpcError) as error:
        stubs.prediction.Predict(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "--max_beam_size" in error.value.details()
    stubs.channel.close()


def test_rows_of_every_signature_and_score_matrix_pairs_are_bounded(http):
    image = b64(colour_png("red"))
    assert_refused(predict(http, "embed_image", {"image_bytes": [image] * 257}), 400, "257 rows", "--max_rows_per_call")
    assert_refused(predict(http, "embed_text", {"text": ["a red circle"] * 257}), 400, "--max_rows_per_call")
    assert_refused(
        predict(http, "score_matrix", {"image_bytes": [image] * 9, "text": ["a red circle"] * 256}),
        400,
        "2304 image-text pairs",
        "--max_matrix_pairs",
    )
    assert predict(http, "score_matrix", {"image_bytes": [image] * 8, "text": ["a"] * 256}).status_code == 200


def test_animated_and_huge_images_are_refused_from_their_headers(http, model_runs):
    gif = animated_gif(150, 64)  # 150 frames: over the default 100
    big = animated_gif(40, 1100)  # 40 frames of 1100x1100: 48 million pixels decoded by the graph
    runs = len(model_runs)
    assert_refused(add(http, gif), 400, "150 frames", "--max_image_frames")
    assert_refused(predict(http, "embed_image", {"image_bytes": [b64(gif)]}), 400, "--max_image_frames")
    assert_refused(
        predict(http, "embed_image", {"image_bytes": [b64(big)]}),
        400,
        "1100x1100 GIF of 40 frames",
        "--max_image_pixels",
    )
    assert model_runs[runs:] == []  # refused before the graph decoded anything
    assert predict(http, "embed_image", {"image_bytes": [b64(colour_png("red"))]}).status_code == 200
    assert model_runs[runs:] == ["embed_image"]  # a call that is not refused does show


def _grpc_error(stubs, request):
    with pytest.raises(grpc.RpcError) as error:
        stubs.prediction.Predict(request, timeout=10)
    return error.value.code(), error.value.details()


def test_a_declared_shape_is_checked_before_anything_is_built(server, grpc_stubs, predict_request):
    stubs = grpc_stubs(server.grpc_port)
    request = predict_request({"image_bytes": np.array([b"x"], object)}, signature="embed_image")
    tensor = request.inputs["image_bytes"]
    tensor.ClearField("string_val")
    # A few bytes declaring 2^40 rows and no values: building the declared array first would ask for 8 TB.
    tensor.tensor_shape.dim[0].size = 2**40
    code, details = _grpc_error(stubs, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details == "tensor parsing error: image_bytes"
    tensor.tensor_shape.dim[0].size = 300
    tensor.string_val.extend([b"x"] * 300)  # as many values as rows: the row limit answers
    code, details = _grpc_error(stubs, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "--max_rows_per_call" in details
    features = predict_request(
        {"image_features": np.zeros((1, 2, 2), np.float32), "text": np.array([b"a"], object)},
        signature="score_features",
    )
    features.inputs["image_features"].tensor_shape.dim[1].size = 2**40  # one float declared as 2^41 of them
    code, details = _grpc_error(stubs, features)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details == "tensor parsing error: image_features"
    stubs.channel.close()


def test_the_inputs_of_a_call_are_bounded_in_values_and_bytes_from_their_sizes():
    limits = RequestLimits(max_input_elements=1000, max_input_bytes=5000)
    limits.check_sizes({"image_features": TensorSize((1, 10, 90), 900, 3600), "text": TensorSize((1,), 1, 10)})
    for sizes, flag in [
        (
            {"image_features": TensorSize((2, 10, 50), 1000, 4000), "text": TensorSize((2,), 2, 4)},
            "--max_input_elements",
        ),
        ({"image_bytes": TensorSize((3,), 3, 6000)}, "--max_input_bytes"),
    ]:
        with pytest.raises(ServingError, match=flag):
            limits.check_sizes(sizes)
    # A REST request's sizes are read from its lists before any array is built.
    seen = []
    json_tensors.request_inputs(
        {"inputs": {"image_features": [[[0.5] * 3] * 2], "text": ["a"]}},
        {"image_features": types_pb2.DT_FLOAT, "text": types_pb2.DT_STRING},
        seen.append,
    )
    assert seen == [{"image_features": TensorSize((1, 2, 3), 6, 24), "text": TensorSize((1,), 1, 0)}]


def _png(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_images_of_one_call_share_a_pixel_budget(http):
    image = b64(_png(1000, 1000))  # 1 megapixel each: far under the per-image limit
    assert predict(http, "embed_image", {"image_bytes": [image] * 3}).status_code == 200
    assert_refused(
        predict(http, "embed_image", {"image_bytes": [image] * 4}),
        400,
        "4 images decode to 4000000",
        "--max_request_pixels",
    )


def test_a_gif_frame_larger_than_its_screen_is_measured_at_its_own_size(http):
    buffer = io.BytesIO()
    Image.new("P", (7000, 7000), 1).save(buffer, "GIF")
    gif = bytearray(buffer.getvalue())
    gif[3:6], gif[6:10] = b"88a", b"\1\0\1\0"  # a version Pillow does not open, a 1x1 screen: 49 Mpx decoded
    assert_refused(
        predict(http, "embed_image", {"image_bytes": [b64(bytes(gif))]}),
        400,
        "(1x1 GIF) decodes to 49000000 pixels",
        "--max_image_pixels",
    )


def test_deeply_nested_json_is_a_400(http):
    for depth in (100000, 500):
        response = http.post(f"/v1/models/{MODEL}:predict", content='{"instances": ' + "[" * depth + "]" * depth + "}")
        assert response.status_code == 400, (depth, response.text)


def test_labels_texts_k_and_candidates_are_bounded(http):
    image_id = add(http, colour_png("red")).json()["id"]
    labels = ",".join(f"thing{n}" for n in range(11))
    assert_refused(
        http.post("/api/describe", data={"id": image_id, "labels": labels}), 400, "11 labels", "--max_labels"
    )
    assert_refused(
        http.post("/api/score", data={"id": image_id, "text": ["a dog"] * 101}), 400, "101 texts", "--max_texts"
    )
    assert_refused(http.get("/search", params={"q": "a red circle", "k": 21}), 400, "k=21", "--max_search_results")
    assert_refused(http.get("/search", params={"q": "a red circle", "candidates": 33}), 400, "--max_search_candidates")
    # Within the limits, more texts than one call's 64 rows are scored in batches.
    scores = http.post("/api/score", data={"id": image_id, "text": [f"a red dog {n}" for n in range(100)]})
    assert scores.status_code == 200 and len(scores.json()) == 100


# ---------------------------------------------------------------------------------------------------------------
# Bodies and fetches.


def _send_chunked(port, path, headers, total, prefix=b"", chunk=64 * 1024):
    """Sends a chunked body (`prefix`, then zeros) of up to `total` bytes, stopping as soon as an answer arrives;
    (status, bytes sent)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n"
        sock.sendall((head + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode())
        if prefix:
            sock.sendall(b"%x\r\n" % len(prefix) + prefix + b"\r\n")
        sent, piece = 0, b"%x\r\n" % chunk + b"\0" * chunk + b"\r\n"
        sock.setblocking(False)
        answer = b""
        while sent < total:
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            if answer:
                break
            try:
                sock.sendall(piece)
                sent += chunk
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                time.sleep(0.01)
        sock.settimeout(10)
        while b"\r\n" not in answer:
            answer += sock.recv(65536)
        return int(answer.split()[1]), sent


def test_a_chunked_body_is_cut_off_at_the_limit(server):
    status, sent = _send_chunked(
        server.rest_port, f"/v1/models/{MODEL}:predict", {"Content-Type": "application/json"}, 64 << 20
    )
    assert status == 413 and sent < 16 * MAX_REQUEST_BYTES
    part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    status, sent = _send_chunked(
        server.rest_port, "/api/images", {"Content-Type": "multipart/form-data; boundary=x"}, 64 << 20, part
    )
    assert status == 413 and sent < 32 * SEARCH_LIMITS.max_upload_bytes


def test_a_json_body_has_its_own_cap_and_errors_quote_only_an_excerpt(http, server):
    # Declared over the cap: answered before the body is read (sent raw: the answer comes while a client that
    # sent the body would still be sending, and the connection closes).
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
            f"application/json\r\nContent-Length: {MAX_JSON_BYTES + 1}\r\n\r\n".encode()
        )
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413") and b"--max_json_bytes" in answer
    body = b'{"instances":[' + b"0," * 100_000 + b'0],"inputs":1}'  # 200 KB, both keys: TF Serving quotes it
    response = http.post(f"/v1/models/{MODEL}:predict", content=body, headers={"Content-Type": "application/json"})
    assert_refused(response, 400, "expecting only one of 'inputs' or 'instances'")
    assert len(response.content) < 500


def test_an_upload_has_its_own_cap(http):
    noise = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")  # ~480 KB: over the 256 KB upload cap, under the body limit
    assert_refused(add(http, buffer.getvalue()), 413, "--max_upload_bytes")


def test_a_dripping_url_ends_at_its_deadline(http):
    # The server drips for 20 s; the 1 s deadline must cut it off, as the server's own record shows.
    outcomes = queue.Queue()
    with dripping_server(seconds=20, outcomes=outcomes) as base:
        assert_refused(http.post("/api/images", data={"url": f"{base}/drip"}), 400, "timed out after 1 s")
        assert outcomes.get(timeout=30) == "hung up"


def test_a_flood_of_slow_urls_gets_503s_and_holds_no_other_route(start_server, fake_export, tmp_path):
    # A deadline longer than the drip, so the slots stay taken for the whole 5 s drip. What is asserted is an
    # order, not a time: the other routes answer while both slots are still taken. A route that waited for the
    # fetches would answer only after them; a machine that stalls for a few seconds fails nothing.
    limits = dataclasses.replace(SEARCH_LIMITS, url_timeout_seconds=60.0)
    search = SearchOptions(str(tmp_path / "index"), allow_private_urls=True, limits=limits)
    with (
        start_server(fake_export, search=search, limits=LIMITS) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.rest_port}", timeout=60) as http,
        dripping_server() as base,
        ThreadPoolExecutor(6) as pool,
    ):
        adds = [pool.submit(http.post, "/api/images", data={"url": f"{base}/drip{n}"}) for n in range(6)]
        refused = next_finished(adds, 4)  # 2 fetch slots: the other 4 adds are refused at once
        assert [response.status_code for response in refused] == [503] * 4
        assert http.get("/api/images/count").status_code == 200
        assert http.get("/").status_code == 200
        assert sum(not add.done() for add in adds) == 2  # both fetches still hold their slots
        assert sorted(add.result().status_code for add in adds) == [400, 400, 503, 503, 503, 503]


def next_finished(futures, count, timeout=30):
    """The results of the first `count` of `futures` to finish."""
    results = []
    for future in concurrent.futures.as_completed(futures, timeout):
        results.append(future.result())
        if len(results) == count:
            return results
    return results


def test_url_credentials_are_never_stored_or_returned(http):
    with dripping_server(images={"/red.png": colour_png("red")}) as base:
        response = http.post("/api/images", data={"url": base.replace("http://", "http://user:secret@") + "/red.png"})
    assert response.status_code in (200, 201)
    assert response.json()["source"] == f"{base}/red.png"
    assert "secret" not in http.get("/api/images", params={"limit": 1000}).text


# ---------------------------------------------------------------------------------------------------------------
# The trust boundary.


def test_only_loopback_host_names_are_answered(http, server):
    port = server.rest_port
    for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.nip.io"):
        assert_refused(http.get("/api/images/count", headers={"Host": host}), 400, "--allowed_hosts")
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
        assert http.get("/api/images/count", headers={"Host": host}).status_code == 200, host
    assert http.get(f"/v1/models/{MODEL}", headers={"Host": "attacker.example"}).status_code == 400


def test_cross_origin_writes_are_refused_and_same_origin_ones_pass(http, server):
    evil = {"Origin": "http://attacker.example"}
    assert_refused(add(http, colour_png((1, 2, 3)), **evil), 403, "cross-origin")
    assert_refused(http.delete("/api/images/00000000-0000-0000-0000-000000000000", headers=evil), 403)
    assert_refused(http.post("/api/reindex", headers=evil), 403)
    assert_refused(http.post("/api/describe", data={"labels": "a"}, headers={"Referer": "http://evil.example/x"}), 403)
    assert_refused(add(http, colour_png((1, 2, 3)), Origin="null"), 403)
    own = {"Origin": f"http://127.0.0.1:{server.rest_port}"}
    assert add(http, colour_png((1, 2, 3)), **own).status_code in (200, 201)
    assert add(http, colour_png((1, 2, 4))).status_code == 201  # no Origin: curl, scripts
    # Origins are scheme, host and port; an Origin never holds credentials.
    for origin in (
        f"https://127.0.0.1:{server.rest_port}",
        f"ftp://127.0.0.1:{server.rest_port}",
        f"http://evil.com@127.0.0.1:{server.rest_port}",
    ):
        assert_refused(add(http, colour_png((1, 2, 5)), Origin=origin), 403, "cross-origin")
    # Reading is not a write.
    assert http.get("/api/images/count", headers=evil).status_code == 200


def test_the_model_routes_refuse_what_a_foreign_page_can_send_without_a_preflight(http, server):
    path, body = f"/v1/models/{MODEL}:predict", b'{"signature_name": "embed_text", "inputs": {"text": ["a"]}}'
    own = f"http://127.0.0.1:{server.rest_port}"
    for headers in (
        {"Origin": "http://evil.example", "Content-Type": "text/plain"},
        {"Origin": "http://evil.example", "Content-Type": "application/json"},
        {"Origin": own, "Content-Type": "text/plain"},
        {"Referer": "http://evil.example/page", "Content-Type": "application/x-www-form-urlencoded"},
        {"Sec-Fetch-Site": "cross-site", "Content-Type": "multipart/form-data; boundary=x"},
    ):
        assert http.post(path, content=body, headers=headers).status_code == 403, headers
    # curl (form-urlencoded by default), Python clients, TF Serving's clients and this server's own page pass.
    for headers in (
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "application/json"},
        {},
        {"Origin": own, "Content-Type": "application/json; charset=utf-8", "Sec-Fetch-Site": "same-origin"},
    ):
        assert http.post(path, content=body, headers=headers).status_code == 200, headers


def _read_until_closed(sock):
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def test_content_length_with_transfer_encoding_is_a_400_that_closes_the_connection(server):
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            "GET /api/images/count HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        )
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400") and answer.count(b"HTTP/1.1") == 1  # the smuggled GET is not served


def test_half_sent_headers_time_out_and_give_way_to_new_connections_past_the_cap(start_server, fake_export):
    limits = ConnectionLimits(max_connections=20, header_timeout_seconds=2.0, idle_timeout_seconds=1.0)
    with start_server(fake_export, connections=limits) as server:
        port = server.rest_port
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
        for sock in held:
            sock.sendall(b"GET /v1/models/captioner HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:  # the 21st connection
            assert client.get(f"/v1/models/{MODEL}").status_code == 200
        # One half-sent connection (the one waiting longest) made way for it, closed without an answer; the others
        # end at their header deadline with a 408 (each read waits for its end; no sleep).
        endings = [_read_until_closed(sock) for sock in held]
        assert endings.count(b"") == 1
        assert all(ending.startswith(b"HTTP/1.1 408") for ending in endings if ending)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:  # nothing sent: closed silently
            assert _read_until_closed(idle) == b""
        for sock in held:
            sock.close()


def test_connections_past_the_cap_are_refused_when_every_one_is_busy(start_server, fake_export):
    limits = ConnectionLimits(max_connections=5, header_timeout_seconds=30.0, idle_timeout_seconds=30.0)
    with start_server(fake_export, connections=limits) as server:
        busy = [socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) for _ in range(5)]
        for sock in busy:  # headers complete, the body never comes: each holds a request in progress
            sock.sendall(
                f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue"
                "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n".encode()
            )
        for sock in busy:  # the server asks for the body: it has the headers and waits
            assert sock.recv(64).startswith(b"HTTP/1.1 100")
        with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as extra:
            refused = _read_until_closed(extra)
        assert refused.startswith(b"HTTP/1.1 503") and b"--max_connections" in refused
        for sock in busy:
            sock.close()


def test_the_page_is_served_with_security_headers(http):
    for path in ("/", "/docs", "/static/app.js", "/api/images/count"):
        headers = http.get(path).headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src" not in http.get("/").headers["content-security-policy"]  # default-src 'self': no inline


def test_a_token_guards_add_delete_and_reindex(start_server, fake_export, tmp_path):
    search = SearchOptions(str(tmp_path / "index"))
    with (
        start_server(fake_export, search=search, api_token="s3cret") as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.rest_port}", timeout=30) as client,
    ):
        assert_refused(add(client, colour_png("red")), 401, "token")
        assert_refused(add(client, colour_png("red"), Authorization="Bearer wrong"), 401)
        assert_refused(client.post("/api/reindex"), 401)
        added = add(client, colour_png("red"), Authorization="Bearer s3cret")
        assert added.status_code == 201
        assert_refused(client.delete(f"/api/images/{added.json()['id']}"), 401)
        assert client.get("/search", params={"q": "a red circle"}).status_code == 200
        assert (
            client.delete(f"/api/images/{added.json()['id']}", headers={"Authorization": "Bearer s3cret"}).status_code
            == 204
        )


def test_another_host_without_a_token_does_not_start(fake_export, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving.server",
            "--host=0.0.0.0",
            "--port=0",
            "--rest_api_port=1",
            f"--model_base_path={fake_export}",
            f"--index_dir={tmp_path / 'index'}",
        ],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert result.returncode != 0
    assert "--api_token_file" in result.stderr and "--allow_unauthenticated_writes" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_ipv6_address_embedding_loopback_is_refused(start_server, fake_export, tmp_path):
    with start_server(fake_export, search=SearchOptions(str(tmp_path / "index"))) as server:
        client = httpx.Client(base_url=f"http://127.0.0.1:{server.rest_port}", timeout=30)
        for host in ("[::127.0.0.1]", "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::1]"):
            assert_refused(client.post("/api/images", data={"url": f"http://{host}:8/a.png"}), 400, "refused")
        client.close()


# ---------------------------------------------------------------------------------------------------------------
# Smaller ones, and consistency under concurrency.


def test_a_bad_offset_is_a_400(http):
    assert_refused(http.get("/api/images", params={"offset": "abc"}), 400, "offset")


def test_concurrent_adds_of_one_new_image_answer_one_201(http):
    for round_number in range(3):
        data = colour_png((round_number, 77, 200))
        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(lambda _, data=data: add(http, data).status_code, range(6)))
        assert sorted(statuses) == [200] * 5 + [201], statuses


@contextlib.contextmanager
def paused(obj, name, before=False):
    """Replaces obj.name with a version that, on its first call, waits for `go` before or after the original."""
    original = getattr(obj, name)
    reached, go = threading.Event(), threading.Event()

    def wait():
        if not reached.is_set():
            reached.set()
            go.wait(20)

    def wrapper(*args, **kwargs):
        if before:
            wait()
        result = original(*args, **kwargs)
        if not before:
            wait()
        return result

    setattr(obj, name, wrapper)
    try:
        yield reached, go
    finally:
        setattr(obj, name, original)
        go.set()


def test_an_add_racing_a_delete_of_the_same_image_leaves_no_entry_without_its_file(http, server):
    data = colour_png((9, 99, 199))
    image_id = add(http, data).json()["id"]
    store = server.search.index.store
    with ThreadPoolExecutor(2) as pool, paused(store, "remove", before=True) as (reached, go):
        # The delete pauses after removing the point, before removing the file; the add comes in between.
        deleting = pool.submit(http.delete, f"/api/images/{image_id}")
        assert reached.wait(20)
        adding = pool.submit(add, http, data)
        time.sleep(0.5)
        go.set()
        assert deleting.result().status_code == 204 and adding.result().status_code == 201
    listed = http.get("/api/images", params={"limit": 1000}).json()["images"]
    assert image_id in [entry["id"] for entry in listed]
    for entry in listed:
        assert http.get(f"/api/images/{entry['id']}/file").status_code == 200, entry


def test_a_search_whose_candidate_is_deleted_mid_rerank_is_not_a_5xx(http, server):
    data = colour_png((240, 240, 10))
    image_id = add(http, data).json()["id"]
    index = server.search.index
    with ThreadPoolExecutor(1) as pool, paused(index, "search") as (reached, go):
        searching = pool.submit(
            http.get, "/search", params={"q": "a yellow star", "k": 20, "candidates": 32, "rank_by": "log_likelihood"}
        )
        assert reached.wait(20)  # stage 1 found its candidates
        assert http.delete(f"/api/images/{image_id}").status_code == 204
        go.set()
        response = searching.result()
    assert response.status_code == 200, response.text
    assert image_id not in [row["id"] for row in response.json()]
