"""Every model runner is a captioning.inference.runners.ModelRunner and behaves as one: LocalModel in this process,
RemoteModel through the project's gRPC server, and the server's in-process ServedModel, each on the fake model."""

import os

import numpy as np
import pytest

from captioning.export import layout
from captioning.inference.runners import InvalidInputError, LocalModel, MissingSignatureError, ModelRunner, RemoteModel
from serving.web.search_service import ServedModel
from tests.fake_model import FAKED
from tests.serving.conftest import MODEL


@pytest.fixture(scope="module")
def server(start_server, fake_export):
    with start_server(fake_export) as server:
        yield server


@pytest.fixture(params=["local", "remote", "in_process"])
def runner(request, server, fake_export):
    if request.param == "local":
        return LocalModel(str(fake_export))
    if request.param == "remote":
        return RemoteModel(f"127.0.0.1:{server.grpc_port}", MODEL)
    return ServedModel(server.predictor, server.registry.get(MODEL))


def test_each_runner_keeps_the_protocol(runner, png):
    assert isinstance(runner, ModelRunner) and runner.path
    assert runner.signature_names() == set(FAKED)
    assert runner.output_names("score_matrix") == {"log_likelihood", "mean_log_prob", "pmi", "contrastive"}
    # The fake colour embedding: "red" names the first palette colour; every vector has unit length.
    embedding = runner.run("embed_text", {"text": ["a red circle", "a blue square"]})["embedding"]
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, rtol=1e-6)
    captions = runner.run(
        "generate_caption",
        {"image_bytes": [png()], "beam_size": np.int32(2), "max_length": np.int32(0), "length_penalty": np.float32(0)},
    )
    assert captions["caption"].shape == (1, 2)
    local_path = runner.extra_file(layout.CONFIG_FILE)
    assert local_path in (None, os.path.join(runner.path, layout.EXTRA_FILES_DIR, layout.CONFIG_FILE))


def test_each_runner_raises_the_protocol_errors(runner, png):
    with pytest.raises(MissingSignatureError):
        runner.output_names("cross_attention")  # the fake has no cross_attention
    with pytest.raises(MissingSignatureError):
        runner.run("cross_attention", {"image_bytes": [png()], "text": ["a red circle"]})
    with pytest.raises(InvalidInputError):
        runner.run("serving_default", {"image_bytes": [b"not an image"], "text": ["a red circle"]})


def test_the_runners_give_the_same_numbers(server, fake_export, png):
    inputs = {"image_bytes": [png((200, 30, 30)), png((30, 30, 200))], "text": ["a red circle", "two blue stars"]}
    local = LocalModel(str(fake_export)).run("serving_default", inputs)
    for other in (
        RemoteModel(f"127.0.0.1:{server.grpc_port}", MODEL),
        ServedModel(server.predictor, server.registry.get(MODEL)),
    ):
        outputs = other.run("serving_default", inputs)
        assert set(outputs) == set(local)
        for name in local:
            np.testing.assert_allclose(outputs[name], local[name], rtol=1e-6)
