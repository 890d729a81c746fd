"""PredictionService / ModelService / health over a real gRPC channel."""

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from tensorflow.python.saved_model import loader_impl
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_pb2,
    regression_pb2,
)

from captioning.export.signatures import SIGNATURES
from captioning.inference.tensors import string_array

MODEL = "captioner"
TEXTS = ["a dog", "a red bird on a branch"]


@pytest.fixture(scope="module")
def server(start_server, fake_export):
    with start_server(fake_export) as server:
        yield server


@pytest.fixture(scope="module")
def pairs(png):
    return {"image_bytes": string_array([png((10, 20, 30)), png((200, 100, 0))]), "text": string_array(TEXTS)}


def expect_error(call, request, code, message=None):
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=30)
    assert raised.value.code() == code, raised.value.details()
    if message is not None:
        assert raised.value.details() == message
    return raised.value.details()


def test_predict_returns_every_output_and_echoes_model_spec(stubs, pairs, predict_request, decode_outputs):
    response = stubs.prediction.Predict(predict_request(pairs), timeout=30)
    assert response.model_spec.name == MODEL
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    outputs = decode_outputs(response)
    assert set(outputs) == set(SIGNATURES["serving_default"].output_names())  # the tiny model has the head
    assert outputs["num_tokens"].dtype == np.int32
    assert outputs["truncated"].dtype == np.bool_
    np.testing.assert_array_equal(outputs["num_tokens"], [2, 6])
    # TF Serving answers with typed fields, not tensor_content.
    assert list(response.outputs["log_likelihood"].float_val) == list(outputs["log_likelihood"])


def test_tensor_content_inputs_give_the_same_scores(stubs, pairs, predict_request, decode_outputs):
    typed = decode_outputs(stubs.prediction.Predict(predict_request(pairs), timeout=30))
    packed = decode_outputs(stubs.prediction.Predict(predict_request(pairs, tensor_content=True), timeout=30))
    for name in typed:
        np.testing.assert_array_equal(typed[name], packed[name])


def test_output_filter_returns_only_the_named_outputs(stubs, pairs, predict_request):
    response = stubs.prediction.Predict(predict_request(pairs, output_filter=["pmi", "num_tokens"]), timeout=30)
    assert set(response.outputs) == {"pmi", "num_tokens"}


def test_score_matrix_signature(stubs, png, predict_request, decode_outputs):
    inputs = {"image_bytes": string_array([png(), png((0, 0, 0)), png((9, 9, 9))]), "text": string_array(TEXTS)}
    response = stubs.prediction.Predict(predict_request(inputs, signature="score_matrix"), timeout=30)
    assert response.model_spec.signature_name == "score_matrix"
    outputs = decode_outputs(response)
    assert {name: array.shape for name, array in outputs.items()} == {
        "log_likelihood": (3, 2),
        "mean_log_prob": (3, 2),
        "pmi": (3, 2),
        "contrastive": (3, 2),
    }


def test_a_64_mib_request_is_accepted(stubs, predict_request):
    big = b"\x01" * (64 * 2**20 + 1)
    # Reaching the model (which rejects the bytes) proves the size was accepted.
    expect_error(
        stubs.prediction.Predict,
        predict_request({"image_bytes": string_array([big]), "text": string_array(["a"])}),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


def test_unknown_model_is_not_found(stubs, pairs, predict_request):
    expect_error(
        stubs.prediction.Predict,
        predict_request(pairs, model="nope"),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    )


def test_unknown_version_is_not_found(stubs, pairs, predict_request):
    expect_error(
        stubs.prediction.Predict,
        predict_request(pairs, version=7),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Specific(captioner, 7)",
    )


def test_unknown_label_is_invalid(stubs, pairs, predict_request):
    expect_error(
        stubs.prediction.Predict,
        predict_request(pairs, label="stable"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Unrecognized servable version label: stable",
    )


def test_unknown_signature_is_failed_precondition(stubs, pairs, predict_request):
    expect_error(
        stubs.prediction.Predict,
        predict_request(pairs, signature="x"),
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "x" not found.',
    )


def test_missing_model_spec_and_name(stubs, pairs, predict_request):
    request = predict_request(pairs)
    request.ClearField("model_spec")
    expect_error(stubs.prediction.Predict, request, grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    expect_error(
        stubs.prediction.Predict,
        predict_request(pairs, model=""),
        grpc.StatusCode.INVALID_ARGUMENT,
        "ModelSpec has no name specified.",
    )


def test_missing_input(stubs, pairs, predict_request):
    expect_error(
        stubs.prediction.Predict,
        predict_request({"text": pairs["text"]}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 1!=2 len({text}) != len({image_bytes,text}). "
        "Sent extra: {}. Missing but required: {image_bytes}.",
    )


def test_extra_input(stubs, pairs, predict_request):
    expect_error(
        stubs.prediction.Predict,
        predict_request({**pairs, "extra": [1.0, 2.0]}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 3!=2 len({extra,image_bytes,text}) != "
        "len({image_bytes,text}). Sent extra: {extra}. Missing but required: {}.",
    )


def test_misnamed_input(stubs, pairs, predict_request):
    expect_error(
        stubs.prediction.Predict,
        predict_request({"image_bytes": pairs["image_bytes"], "txt": pairs["text"]}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Signature input alias: text(feed name: serving_default_text:0) not found in request "
        "and no default value provided. Inputs expected to be in the request "
        "{image_bytes,txt}, or default input alias set: ",
    )


def test_wrong_dtype(stubs, pairs, predict_request):
    expect_error(
        stubs.prediction.Predict,
        predict_request({**pairs, "image_bytes": np.array([1.0, 2.0], np.float32)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expects arg[0] to be string but float is provided",
    )


def test_unparsable_tensor(stubs, pairs, predict_request):
    request = predict_request(pairs)
    request.inputs["text"].tensor_shape.dim[0].size = -3
    expect_error(stubs.prediction.Predict, request, grpc.StatusCode.INVALID_ARGUMENT, "tensor parsing error: text")


def test_bad_output_filter(stubs, pairs, predict_request):
    expect_error(
        stubs.prediction.Predict,
        predict_request(pairs, output_filter=["nope"]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "output tensor alias not found in signature: nope Outputs expected to be in the set "
        "{contrastive,log_likelihood,mean_log_prob,num_tokens,perplexity,pmi,prior_log_likelihood,"
        "truncated,unknown_tokens}.",
    )
    expect_error(
        stubs.prediction.Predict,
        predict_request(pairs, output_filter=["pmi", "pmi"]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "duplicate output tensor alias: pmi",
    )


def test_corrupt_image_is_the_models_invalid_argument(stubs, pairs, predict_request):
    details = expect_error(
        stubs.prediction.Predict,
        predict_request({**pairs, "image_bytes": string_array([b"not an image", b"x"])}),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert details.startswith("Unknown image file format")


def test_empty_text_is_the_models_invalid_argument(stubs, pairs, predict_request):
    details = expect_error(
        stubs.prediction.Predict,
        predict_request({**pairs, "text": string_array(["", "a cat"])}),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "text must contain at least one word" in details


def test_rows_of_different_lengths_are_rejected_like_a_batching_server(stubs, pairs, predict_request):
    expect_error(
        stubs.prediction.Predict,
        predict_request({**pairs, "text": string_array(["a"])}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Batching Run() input tensors must have equal 0th-dimension size",
    )


def test_more_rows_than_max_batch_size_are_rejected_like_a_batching_server(stubs, png, predict_request):
    rows = 65  # the default max_batch_size is 64, as in serving/batching_parameters.config
    expect_error(
        stubs.prediction.Predict,
        predict_request({"image_bytes": string_array([png()] * rows), "text": string_array(["a"] * rows)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Task size 65 is larger than maximum input batch size 64",
    )


def test_metadata_is_the_saved_models_signature_def_map(stubs, fake_export):
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_pb2.ModelSpec(name=MODEL), metadata_field=["signature_def"]
    )
    response = stubs.prediction.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == MODEL and response.model_spec.version.value == 1
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_defs)
    saved_model = loader_impl.parse_saved_model(str(fake_export / "1"))
    assert dict(signature_defs.signature_def) == dict(saved_model.meta_graphs[0].signature_def)
    assert {"serving_default", "score_matrix"} <= set(signature_defs.signature_def)


def test_metadata_errors(stubs):
    call = stubs.prediction.GetModelMetadata
    spec = model_pb2.ModelSpec(name=MODEL)
    expect_error(
        call,
        get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec),
        grpc.StatusCode.INVALID_ARGUMENT,
        "GetModelMetadataRequest must specify at least one metadata_field",
    )
    expect_error(
        call,
        get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec, metadata_field=["graph"]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Metadata field graph is not supported",
    )
    expect_error(
        call,
        get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=model_pb2.ModelSpec(name="nope"), metadata_field=["signature_def"]
        ),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    )


def test_model_status(stubs):
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=MODEL))
    (status,) = stubs.model.GetModelStatus(request, timeout=30).model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0
    request.model_spec.version.value = 3
    expect_error(
        stubs.model.GetModelStatus, request, grpc.StatusCode.NOT_FOUND, "Could not find version 3 of model captioner"
    )
    expect_error(
        stubs.model.GetModelStatus,
        get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name="nope")),
        grpc.StatusCode.NOT_FOUND,
        "Could not find any versions of model nope",
    )


def test_health_is_serving(stubs):
    for service in ("", "tensorflow.serving.PredictionService"):
        response = stubs.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    "method, request_type",
    [
        ("Classify", classification_pb2.ClassificationRequest),
        ("Regress", regression_pb2.RegressionRequest),
        ("MultiInference", inference_pb2.MultiInferenceRequest),
    ],
)
def test_example_based_apis_are_unimplemented(stubs, method, request_type):
    # They take tf.Example inputs, which the captioner's signatures do not.
    request = request_type()
    if method != "MultiInference":
        request.model_spec.name = MODEL
    expect_error(getattr(stubs.prediction, method), request, grpc.StatusCode.UNIMPLEMENTED)
