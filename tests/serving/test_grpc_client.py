"""captioning.inference.grpc_client.PredictionClient against the project's server, whose fixtures live here."""

import grpc
import numpy as np
import pytest

from captioning.inference.grpc_client import PredictionClient, PredictionError


@pytest.fixture(scope="module")
def server(start_server, fake_export):
    with start_server(fake_export) as server:
        yield server


@pytest.fixture(scope="module")
def client(server):
    with PredictionClient(f"127.0.0.1:{server.grpc_port}", timeout=30) as client:
        yield client


def test_score_returns_numpy_scores_per_pair(client, png):
    scores = client.score([png(), png((0, 0, 0))], ["a dog", "two cats on a sofa"])
    assert scores["log_likelihood"].shape == (2,) and scores["log_likelihood"].dtype == np.float32
    np.testing.assert_array_equal(scores["num_tokens"], [2, 5])


def test_score_splits_long_lists_into_requests_a_batching_tf_serving_accepts(client, png):
    texts = [f"caption number {i}" for i in range(150)]
    scores = client.score([png()] * 150, texts, rows_per_request=64)
    assert scores["pmi"].shape == (150,)
    np.testing.assert_allclose(scores["pmi"][:3], client.score([png()] * 3, texts[:3])["pmi"])


def test_score_matrix(client, png):
    scores = client.score_matrix([png(), png((1, 2, 3))], ["a", "b c", "d e f"])
    assert scores["log_likelihood"].shape == (2, 3)


def test_predict_with_lists_and_output_filter(client, png):
    outputs = client.predict({"image_bytes": [png()], "text": ["a dog"]}, output_filter=["pmi"])
    assert list(outputs) == ["pmi"]


def test_errors_carry_the_status_code_and_message(client, png):
    with pytest.raises(PredictionError) as raised:
        client.score([b"not an image"], ["a dog"])
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details.startswith("Unknown image file format")
    assert str(raised.value).startswith("INVALID_ARGUMENT: Unknown image file format")


def test_unknown_model_and_pinned_version(server, png):
    with PredictionClient(f"127.0.0.1:{server.grpc_port}", model_name="nope") as client:
        with pytest.raises(PredictionError) as raised:
            client.score([png()], ["a"])
        assert raised.value.code == grpc.StatusCode.NOT_FOUND
    with PredictionClient(f"127.0.0.1:{server.grpc_port}", version=1) as client:
        assert client.score([png()], ["a"])["num_tokens"][0] == 1


def test_a_remote_model_tells_a_missing_signature_by_its_status_code(server, png):
    """FAILED_PRECONDITION is TF Serving's answer to a signature the model lacks, whatever its message says."""
    from captioning.inference.runners import InvalidInputError, MissingSignatureError, open_model

    model = open_model(server=f"127.0.0.1:{server.grpc_port}")
    with pytest.raises(MissingSignatureError, match="has no 'no_such_signature' signature"):
        model.run("no_such_signature", {"text": ["a"]})
    with pytest.raises(InvalidInputError, match="Unknown image file format"):
        model.run("serving_default", {"image_bytes": [b"not an image"], "text": ["a dog"]})
