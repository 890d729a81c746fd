"""The trained model served over gRPC and REST scores exactly like the SavedModel in-process."""

import base64
import threading
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.saved_model import loader_impl
from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2

from captioning.inference.tensors import string_array
from serving.batching import BatchingOptions

PAIRS = [((200, 30, 30), "a red circle"), ((30, 200, 30), "a green square on the left"), ((30, 30, 200), "blue")]


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
    # A long batch wait, so concurrent requests surely share a model call.
    with start_server(tiny_export_dir, batching=BatchingOptions(batch_timeout_micros=200_000)) as server:
        yield server


def test_grpc_scores_equal_the_saved_model(stubs, predict_request, decode_outputs, pairs, expected):
    images, texts = pairs
    response = stubs.prediction.Predict(
        predict_request({"image_bytes": string_array(images), "text": string_array(texts)}), timeout=60
    )
    outputs = decode_outputs(response)
    assert set(outputs) == set(expected)
    for name, values in expected.items():
        np.testing.assert_allclose(outputs[name], values, rtol=1e-5, atol=1e-5)


def test_rest_scores_equal_the_saved_model(server, rest, pairs, expected):
    images, texts = pairs
    instances = [
        {"image_bytes": {"b64": base64.b64encode(image).decode()}, "text": text} for image, text in zip(images, texts)
    ]
    status, body = rest(server.rest_port, "POST", "/v1/models/captioner:predict", {"instances": instances})
    assert status == 200, body
    for name, values in expected.items():
        got = np.array([row[name] for row in body["predictions"]], dtype=values.dtype)
        np.testing.assert_allclose(got, values, rtol=1e-5, atol=1e-5)


def test_batched_concurrent_requests_score_like_the_saved_model(
    stubs, predict_request, decode_outputs, pairs, expected
):
    images, texts = pairs
    barrier = threading.Barrier(len(texts))

    def one_pair(i):
        request = predict_request({"image_bytes": string_array([images[i]]), "text": string_array([texts[i]])})
        barrier.wait()
        return decode_outputs(stubs.prediction.Predict(request, timeout=60))

    with futures.ThreadPoolExecutor(len(texts)) as pool:
        results = list(pool.map(one_pair, range(len(texts))))
    for i, outputs in enumerate(results):
        for name, values in expected.items():
            np.testing.assert_allclose(outputs[name], values[i : i + 1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "image, text, message",
    [
        (b"not an image", "a red circle", "Unknown image file format"),
        (None, "  ", "text must contain at least one word"),
    ],
    ids=["corrupt_image", "empty_text"],
)
def test_bad_inputs_are_invalid_argument_and_the_server_keeps_serving(
    stubs, predict_request, pairs, image, text, message
):
    images, texts = pairs
    request = predict_request(
        {"image_bytes": string_array([image or images[0], images[1]]), "text": string_array([text, texts[1]])}
    )
    with pytest.raises(grpc.RpcError) as raised:
        stubs.prediction.Predict(request, timeout=60)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()
    good = predict_request({"image_bytes": string_array(images[:1]), "text": string_array(texts[:1])})
    assert stubs.prediction.Predict(good, timeout=60).outputs["log_likelihood"].float_val


def test_metadata_is_the_exported_signature_def_map(stubs, tiny_export_dir):
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_pb2.ModelSpec(name="captioner"), metadata_field=["signature_def"]
    )
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert stubs.prediction.GetModelMetadata(request, timeout=60).metadata["signature_def"].Unpack(signature_defs)
    saved_model = loader_impl.parse_saved_model(f"{tiny_export_dir}/1")
    assert dict(signature_defs.signature_def) == dict(saved_model.meta_graphs[0].signature_def)
    assert {"serving_default", "score_matrix"} <= set(signature_defs.signature_def)
