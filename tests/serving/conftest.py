"""Shared fixtures: a fake SavedModel export, in-process servers, clients."""

import contextlib
import http.client
import io
import json
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2_grpc
from PIL import Image
from tensorflow_serving.apis import model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc

from captioning.inference import tensors
from captioning.util import local_ports
from serving.batching import BatchingOptions
from serving.model_registry import single_model_config
from serving.server import ModelServer, ServerOptions
from tests.fake_model import export_fake_model

MODEL = "captioner"


def png_bytes(color=(120, 80, 200), size=(8, 8)):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def png():
    return png_bytes


@pytest.fixture(scope="session")
def fake_export(tmp_path_factory):
    """A base path holding version 1 of the fake model; treat as read-only."""
    base_path = tmp_path_factory.mktemp("fake_export")
    export_fake_model(str(base_path), 1)
    return base_path


@contextlib.contextmanager
def running_server(base_path=None, model_configs=None, **options):
    """An in-process ModelServer on free loopback ports, stopped on exit."""
    configs = model_configs or [single_model_config(MODEL, str(base_path))]
    options.setdefault("batching", BatchingOptions())
    server = ModelServer(
        ServerOptions(model_configs=configs, port=0, rest_api_port=0, file_system_poll_wait_seconds=0.2, **options)
    )
    assert server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def start_server():
    """`with start_server(base_path, **ServerOptions fields) as server:`."""
    return running_server


@dataclass
class Stubs:
    channel: grpc.Channel
    prediction: prediction_service_pb2_grpc.PredictionServiceStub
    model: model_service_pb2_grpc.ModelServiceStub
    health: health_pb2_grpc.HealthStub


def connect(port):
    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}",
        options=[("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1)],
    )
    return Stubs(
        channel,
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
        health_pb2_grpc.HealthStub(channel),
    )


@pytest.fixture(scope="session")
def grpc_stubs():
    """`grpc_stubs(port)` -> Stubs over a real channel to 127.0.0.1:port."""
    return connect


@pytest.fixture(scope="module")
def stubs(server):
    """Stubs connected to the test module's own `server` fixture."""
    stubs = connect(server.grpc_port)
    yield stubs
    stubs.channel.close()


def make_predict_request(
    inputs, model=MODEL, signature="", version=None, label=None, output_filter=(), tensor_content=False
):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tensors.to_proto(value, use_tensor_content=tensor_content))
    request.output_filter.extend(output_filter)
    return request


@pytest.fixture(scope="session")
def predict_request():
    """`predict_request({name: values}, signature=..., version=...)` -> PredictRequest."""
    return make_predict_request


def outputs_of(response):
    return {name: tensors.from_proto(proto) for name, proto in response.outputs.items()}


@pytest.fixture(scope="session")
def decode_outputs():
    """`decode_outputs(PredictResponse)` -> {name: np.ndarray}."""
    return outputs_of


def http_call(port, method, path, body=None):
    """(HTTP status, parsed JSON) of one REST request."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        payload = body if isinstance(body, (bytes, type(None))) else json.dumps(body)
        connection.request(method, path, body=payload)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.fixture(scope="session")
def rest():
    """`rest(port, "POST", path, body)` -> (status, JSON)."""
    return http_call


@pytest.fixture(scope="session")
def free_port():
    """`free_port()` -> a loopback port nobody listens on right now."""

    return local_ports.free_port
