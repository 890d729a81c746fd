"""TF Serving's REST API over real HTTP."""

import base64
import gc
import json
import socket

import numpy as np
import pytest

from captioning.inference.tensors import string_array

MODEL = "captioner"
PREDICT = f"/v1/models/{MODEL}:predict"


@pytest.fixture(scope="module")
def server(start_server, fake_export):
    with start_server(fake_export) as server:
        yield server


@pytest.fixture(scope="module")
def call(server, rest):
    return lambda method, path, body=None: rest(server.rest_port, method, path, body)


@pytest.fixture(scope="module")
def images(png):
    return [png((10, 20, 30)), png((200, 100, 0))]


def b64(data):
    return {"b64": base64.b64encode(data).decode()}


def test_model_status(call):
    assert call("GET", f"/v1/models/{MODEL}") == (
        200,
        {
            "model_version_status": [
                {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            ]
        },
    )
    assert call("GET", f"/v1/models/{MODEL}/versions/1")[0] == 200
    assert call("GET", f"/v1/models/{MODEL}/versions/2") == (
        404,
        {"error": "Could not find version 2 of model captioner"},
    )
    assert call("GET", "/v1/models/nope") == (404, {"error": "Could not find any versions of model nope"})
    assert call("GET", "/v1/models") == (400, {"error": "Missing model name in request."})


def test_metadata_lists_the_signatures(call):
    status, body = call("GET", f"/v1/models/{MODEL}/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": MODEL, "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert signatures["serving_default"]["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    assert signatures["score_matrix"]["outputs"]["pmi"]["dtype"] == "DT_FLOAT"


def test_row_format_matches_grpc(call, server, images, grpc_stubs, predict_request, decode_outputs):
    texts = ["a dog", "a red bird on a branch"]
    status, body = call(
        "POST",
        PREDICT,
        {"instances": [{"image_bytes": b64(image), "text": text} for image, text in zip(images, texts)]},
    )
    assert status == 200, body
    stubs = grpc_stubs(server.grpc_port)
    expected = decode_outputs(
        stubs.prediction.Predict(
            predict_request({"image_bytes": string_array(images), "text": string_array(texts)}), timeout=30
        )
    )
    stubs.channel.close()
    assert len(body["predictions"]) == 2
    for name, values in expected.items():
        got = [row[name] for row in body["predictions"]]
        np.testing.assert_allclose(np.array(got, dtype=values.dtype), values, rtol=1e-6)
    assert body["predictions"][0]["truncated"] is False
    assert isinstance(body["predictions"][0]["num_tokens"], int)


def test_columnar_format_and_score_matrix(call, images):
    status, body = call(
        "POST",
        PREDICT,
        {
            "signature_name": "score_matrix",
            "inputs": {"image_bytes": [b64(image) for image in images], "text": ["a dog", "a cat", "a bird"]},
        },
    )
    assert status == 200, body
    assert set(body["outputs"]) == {"log_likelihood", "mean_log_prob", "pmi", "contrastive"}
    assert np.array(body["outputs"]["pmi"]).shape == (2, 3)


def test_version_in_path(call, images):
    body = {"instances": [{"image_bytes": b64(images[0]), "text": "a dog"}]}
    assert call("POST", f"/v1/models/{MODEL}/versions/1:predict", body)[0] == 200
    assert call("POST", f"/v1/models/{MODEL}/versions/9:predict", body) == (
        404,
        {"error": "Servable not found for request: Specific(captioner, 9)"},
    )
    assert call("POST", f"/v1/models/{MODEL}/labels/canary:predict", body) == (
        400,
        {"error": "Unrecognized servable version label: canary"},
    )


@pytest.mark.parametrize(
    "body, status, error",
    [
        (b"", 400, "JSON Parse error: The document is empty. at offset: 0"),
        (
            b'{"instances": [1 2]}',
            400,
            "JSON Parse error: Missing a comma or ']' after an array element. at offset: 17",
        ),
        (
            b'{"instances": [1] "x": 2}',
            400,
            "JSON Parse error: Missing a comma or '}' after an object member. at offset: 18",
        ),
        (b'{"a": "[", "b" 1}', 400, "JSON Parse error: Missing a colon after a name of object member. at offset: 15"),
        (
            b'{"instances": [1]} x',
            400,
            "JSON Parse error: The document root must not be followed by other values. at offset: 19",
        ),
        (b'{"instances": ["\xff"]}', 400, "JSON Parse error: Invalid encoding in string. at offset: 16"),
        ([1, 2], 400, "JSON Value: [1, 2] Is not object"),
        ({"instances": []}, 400, "JSON Value: {\"instances\": []} No values in 'instances' array"),
        ({}, 400, "Missing 'inputs' or 'instances' key"),
        (
            {"signature_name": 3, "inputs": {}},
            400,
            'JSON Value: {"signature_name": 3, "inputs": {}} not formatted correctly. '
            "'signature_name' key must be a string value.",
        ),
        ({"signature_name": "x", "inputs": {}}, 400, 'Serving signature name: "x" not found in signature def'),
        (
            {"instances": ["a"]},
            400,
            "instances is a plain list, but expecting list of objects as "
            "multiple input tensors required as per tensorinfo_map",
        ),
        ({"inputs": {"text": ["a"]}}, 400, "Missing named input: image_bytes in 'inputs' object."),
        (
            {"instances": [{"image_bytes": {"b64": "AA=="}, "text": 5}]},
            400,
            "Failed to process element: 0 key: text of 'instances' list. Error: INVALID_ARGUMENT: "
            "JSON Value: 5 Type: Number is not of expected type: string",
        ),
        (
            {"instances": [{"image_bytes": {"b64": "!!"}, "text": "a"}]},
            400,
            "Failed to process element: 0 key: image_bytes of 'instances' list. Error: "
            "INVALID_ARGUMENT: Unable to base64 decode",
        ),
        (
            {"instances": [{"text": "a"}]},
            400,
            'Failed to process element: 0 of \'instances\' list. JSON object: {"text": "a"} keys '
            "must be equal to: image_bytes,text",
        ),
    ],
)
def test_request_errors_use_tf_servings_messages(call, body, status, error):
    assert call("POST", PREDICT, body) == (status, {"error": error})


# TF Serving's own handler cases (http_rest_api_handler_test.cc: UnsupportedApiCalls, PredictModelNameVersionErrors,
# PredictRequestErrors), on this model: its "incorrect type" case sends numbers to a signature of one string input.
@pytest.mark.parametrize(
    "method, path, body, status, error",
    [
        ("GET", "/v1/foo", b"", 400, "Malformed request"),
        ("POST", "/v1/foo", b"", 400, "Malformed request"),
        ("GET", "/v1/models", b"", 400, "Missing model name"),
        ("POST", "/v1/models", b"", 400, "Malformed request"),
        ("GET", "/v1/models/foo:predict", b"", 400, "Malformed request"),
        ("GET", "/v1/models/foo/version/50:predict", b"", 400, "Malformed request"),
        ("POST", "/v1/models/foo/version/50:regress", b"", 400, "Malformed request"),
        ("POST", "/v1/models/foo/versions/HELLO:regress", b"", 400, "Malformed request"),
        ("POST", f"/v1/models/foo/versions/{2**64 - 1}:regress", b"", 400, "Failed to convert version"),
        ("POST", "/v1/models/foo:predict", b'{ "instances": [1] }', 404, ""),
        ("POST", "/v1/models/foo/versions/50:predict", b'{ "instances": [1] }', 404, ""),
        ("POST", f"/v1/models/{MODEL}99:predict", b'{ "instances": [1] }', 404, ""),
        ("POST", PREDICT, b"", 400, "JSON Parse error: The document is empty"),
        ("POST", PREDICT, b"instances = [1, 2]", 400, "JSON Parse error: Invalid value"),
        (
            "POST",
            PREDICT,
            b'{ "signature_name": "embed_text", "instances": [1, 2] }',
            400,
            "not of expected type: string",
        ),
    ],
)
def test_tf_servings_own_handler_cases(call, method, path, body, status, error):
    got_status, got = call(method, path, body)
    assert got_status == status and error in got["error"], got


def test_model_errors_are_bad_requests(call, images):
    status, body = call("POST", PREDICT, {"instances": [{"image_bytes": b64(b"junk"), "text": "a"}]})
    assert status == 400 and body["error"].startswith("Unknown image file format")
    status, body = call("POST", PREDICT, {"instances": [{"image_bytes": b64(images[0]), "text": " "}]})
    assert status == 400 and "text must contain at least one word" in body["error"]


def test_unknown_model_and_malformed_paths(call):
    assert call("POST", "/v1/models/nope:predict", {"inputs": {}}) == (
        404,
        {"error": "Servable not found for request: Latest(nope)"},
    )
    assert call("GET", f"/v1/models/{MODEL}:predict") == (
        400,
        {"error": f"Malformed request: GET /v1/models/{MODEL}:predict"},
    )
    assert call("POST", f"/v1/models/{MODEL}:classify", {"examples": []})[0] == 501


def test_openapi_document(call):
    status, spec = call("GET", "/v1/openapi.json")
    assert status == 200
    assert spec["openapi"].startswith("3.")
    assert "/v1/models/{model_name}:predict" in spec["paths"]


def test_garbage_bytes_do_not_hurt_the_server(server, call):
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        assert b"400" in sock.recv(4096)  # http.server's "Bad request" page
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
        # A negative length must not make the server read until the client hangs up.
        sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nContent-Length: -1\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 400 ")
    assert call("GET", f"/v1/models/{MODEL}")[0] == 200


def test_floats_are_written_like_tf_serving():
    from serving.json_tensors import Format, response_json

    text = response_json({"x": np.array([0.2, 9000000.0, 1.0, np.nan, -np.inf], np.float32)}, Format.COLUMNAR)
    assert text == '{"outputs": [0.2, 9e+06, 1.0, NaN, -Infinity]}'
    assert json.loads(text)["outputs"][0] == 0.2


def test_answers_leave_at_once_on_connections_without_nagle(server, call):
    """Every accepted connection has TCP_NODELAY: without it each small answer (headers and body written apart)
    waited about 40 ms for the client's delayed ACK, 15 times a thumbnail's own cost."""
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as client:
        client.sendall(f"GET /v1/models/{MODEL} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        assert client.recv(4096).startswith(b"HTTP/1.1 200 ")
        # The server runs in this process: find its end of this connection among the live sockets.
        (accepted,) = [
            sock
            for sock in (obj for obj in gc.get_objects() if isinstance(obj, socket.socket))
            if sock.fileno() != -1 and sock is not client and _peer(sock) == client.getsockname()
        ]
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def _peer(sock):
    try:
        return sock.getpeername()
    except OSError:  # a listening or closed socket
        return None
