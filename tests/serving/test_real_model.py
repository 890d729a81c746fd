"""The trained model served over gRPC and REST scores exactly like the SavedModel in-process."""
import base64

import numpy as np
import pytest
import tensorflow as tf

from serving.tensors import string_array

PAIRS = [((200, 30, 30), "a red circle"), ((30, 200, 30), "a green square on the left"),
         ((30, 30, 200), "blue")]


@pytest.fixture(scope="module")
def pairs(png):
    return [png(color, size=(32, 32)) for color, _ in PAIRS], [text for _, text in PAIRS]


@pytest.fixture(scope="module")
def expected(tiny_export_dir, pairs):
    images, texts = pairs
    model = tf.saved_model.load(f"{tiny_export_dir}/1", tags=["serve"])
    outputs = model.signatures["serving_default"](image_bytes=tf.constant(images), text=tf.constant(texts))
    return {name: tensor.numpy() for name, tensor in outputs.items()}


@pytest.fixture(scope="module")
def server(start_server, tiny_export_dir):
    with start_server(tiny_export_dir) as server:
        yield server


def test_grpc_scores_equal_the_saved_model(server, grpc_stubs, predict_request, decode_outputs,
                                           pairs, expected):
    images, texts = pairs
    stubs = grpc_stubs(server.grpc_port)
    response = stubs.prediction.Predict(
        predict_request({"image_bytes": string_array(images), "text": string_array(texts)}), timeout=60)
    stubs.channel.close()
    outputs = decode_outputs(response)
    assert set(outputs) == set(expected)
    for name, values in expected.items():
        np.testing.assert_allclose(outputs[name], values, rtol=1e-5)


def test_rest_scores_equal_the_saved_model(server, rest, pairs, expected):
    images, texts = pairs
    instances = [{"image_bytes": {"b64": base64.b64encode(image).decode()}, "text": text}
                 for image, text in zip(images, texts)]
    status, body = rest(server.rest_port, "POST", "/v1/models/captioner:predict", {"instances": instances})
    assert status == 200, body
    for name, values in expected.items():
        got = np.array([row[name] for row in body["predictions"]], dtype=values.dtype)
        np.testing.assert_allclose(got, values, rtol=1e-5)
