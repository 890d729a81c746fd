"""Version directories: hot-swapping new versions, pinning, labels, several models."""

import time

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_pb2

from captioning.inference.tensors import string_array
from serving.model_registry import read_model_config_file
from tests.fake_model import export_fake_model

State = get_model_status_pb2.ModelVersionStatus


@pytest.fixture(scope="module")
def inputs(png):
    return {"image_bytes": string_array([png()]), "text": string_array(["a dog on a mat"])}


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def statuses(stubs, model="captioner"):
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=model))
    response = stubs.model.GetModelStatus(request, timeout=30)
    return {status.version: status for status in response.model_version_status}


def test_new_version_is_picked_up_without_restart(
    tmp_path, start_server, grpc_stubs, predict_request, decode_outputs, inputs
):
    export_fake_model(str(tmp_path), 1)
    with start_server(tmp_path) as server:
        stubs = grpc_stubs(server.grpc_port)
        before = stubs.prediction.Predict(predict_request(inputs), timeout=30)
        assert before.model_spec.version.value == 1

        export_fake_model(str(tmp_path), 2)
        wait_for(lambda: stubs.prediction.Predict(predict_request(inputs), timeout=30).model_spec.version.value == 2)
        after = decode_outputs(stubs.prediction.Predict(predict_request(inputs), timeout=30))
        assert not np.allclose(after["log_likelihood"], decode_outputs(before)["log_likelihood"])

        # Latest-1 policy: version 1 is unloaded once 2 is available.
        wait_for(lambda: statuses(stubs)[1].state == State.END)
        assert statuses(stubs)[2].state == State.AVAILABLE
        with pytest.raises(grpc.RpcError) as raised:
            stubs.prediction.Predict(predict_request(inputs, version=1), timeout=30)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        stubs.channel.close()


def test_broken_version_keeps_the_old_one_serving(tmp_path, start_server, grpc_stubs, predict_request, inputs):
    export_fake_model(str(tmp_path), 1)
    with start_server(tmp_path) as server:
        stubs = grpc_stubs(server.grpc_port)
        (tmp_path / "2").mkdir()
        (tmp_path / "2" / "saved_model.pb").write_bytes(b"not a saved model")
        wait_for(lambda: 2 in statuses(stubs) and statuses(stubs)[2].state == State.END)
        assert statuses(stubs)[2].status.error_message
        response = stubs.prediction.Predict(predict_request(inputs), timeout=30)
        assert response.model_spec.version.value == 1
        stubs.channel.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, start_server):
    """Versions 1-3 on disk; a config file serves 1 and 2 (labelled) as "captioner", 3 as "other"."""
    base_path = tmp_path_factory.mktemp("versions")
    for version in (1, 2, 3):
        export_fake_model(str(base_path), version)
    config_file = base_path / "models.config"
    config_file.write_text(f"""
model_config_list {{
  config {{
    name: "captioner"
    base_path: "{base_path}"
    model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
  config {{
    name: "other"
    base_path: "{base_path}"
    model_platform: "tensorflow"
  }}
}}""")
    with start_server(model_configs=read_model_config_file(str(config_file))) as server:
        yield server


def test_version_pinning(stubs, predict_request, decode_outputs, inputs):
    scores = {}
    for version in (1, 2):
        response = stubs.prediction.Predict(predict_request(inputs, version=version), timeout=30)
        assert response.model_spec.version.value == version
        scores[version] = decode_outputs(response)["log_likelihood"]
    assert not np.allclose(scores[1], scores[2])
    # The policy names versions 1 and 2, so the newest served is 2, not 3.
    assert stubs.prediction.Predict(predict_request(inputs), timeout=30).model_spec.version.value == 2


def test_missing_version_is_not_found(stubs, predict_request, inputs):
    for version in (3, 5):
        with pytest.raises(grpc.RpcError) as raised:
            stubs.prediction.Predict(predict_request(inputs, version=version), timeout=30)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert raised.value.details() == f"Servable not found for request: Specific(captioner, {version})"


def test_version_labels(stubs, server, predict_request, rest, inputs):
    for label, version in (("stable", 1), ("canary", 2)):
        response = stubs.prediction.Predict(predict_request(inputs, label=label), timeout=30)
        assert response.model_spec.version.value == version
        status, body = rest(server.rest_port, "GET", f"/v1/models/captioner/labels/{label}")
        assert status == 200 and body["model_version_status"][0]["version"] == str(version)


def test_several_models_from_a_config_file(stubs, predict_request, inputs):
    response = stubs.prediction.Predict(predict_request(inputs, model="other"), timeout=30)
    assert response.model_spec.name == "other"
    assert response.model_spec.version.value == 3  # default policy: latest 1
    assert set(statuses(stubs)) == {1, 2}
