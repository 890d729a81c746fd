"""Server-side batching: the Batcher itself, then through a running server."""

import threading
import time
from concurrent import futures

import numpy as np
import pytest

import serving.predictor
from captioning.inference.tensors import string_array
from serving.batching import Batcher, BatchingOptions
from serving.status import ServingError, invalid_argument


def concurrently(function, arguments):
    """Calls function(*args) for each args at (nearly) the same moment; returns results."""
    barrier = threading.Barrier(len(arguments))

    def call(args):
        barrier.wait()
        return function(*args)

    with futures.ThreadPoolExecutor(len(arguments)) as pool:
        return list(pool.map(call, arguments))


class RecordingModel:
    """A run() that doubles its input and records the rows of every call."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    def __call__(self, inputs):
        x = inputs["x"]
        with self.lock:
            self.calls.append(len(x))
        if (x < 0).any():
            raise invalid_argument("negative input")
        return {"y": x * 2, "n": np.full(len(x), len(x))}


def make_batcher(max_batch_size=4, timeout_s=1.0):
    model = RecordingModel()
    options = BatchingOptions(max_batch_size=max_batch_size, batch_timeout_micros=int(timeout_s * 1e6))
    return model, Batcher(model, options)


def test_concurrent_requests_become_one_call_and_get_their_own_rows():
    model, batcher = make_batcher(max_batch_size=4)
    results = concurrently(lambda i: batcher.submit({"x": np.array([i, i + 10])}), [(0,), (1,)])
    batcher.close()
    assert model.calls == [4]
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], [2 * i, 2 * (i + 10)])
        np.testing.assert_array_equal(result["n"], [4, 4])


def test_batches_never_exceed_max_batch_size():
    model, batcher = make_batcher(max_batch_size=4, timeout_s=0.2)
    results = concurrently(lambda i: batcher.submit({"x": np.array([i])}), [(i,) for i in range(10)])
    batcher.close()
    assert sum(model.calls) == 10 and max(model.calls) <= 4
    assert [r["y"][0] for r in results] == [2 * i for i in range(10)]


def test_a_request_bigger_than_max_batch_size_is_rejected_like_tf_serving():
    model, batcher = make_batcher(max_batch_size=4)
    with pytest.raises(ServingError, match="^Task size 6 is larger than maximum input batch size 4$"):
        batcher.submit({"x": np.arange(6)})
    batcher.close()
    assert model.calls == []


def test_requests_with_different_trailing_shapes_are_not_merged():
    model, batcher = make_batcher(max_batch_size=8, timeout_s=0.3)
    concurrently(batcher.submit, [({"x": np.zeros((1, 2))},), ({"x": np.zeros((1, 3))},)])
    batcher.close()
    assert sorted(model.calls) == [1, 1]


def test_a_bad_request_fails_alone():
    model, batcher = make_batcher(max_batch_size=3)

    def submit(value):
        try:
            return batcher.submit({"x": np.array([value])})["y"][0]
        except ServingError as error:
            return error.message

    results = concurrently(submit, [(1,), (-1,), (2,)])
    batcher.close()
    assert results == [2, "negative input", 4]
    assert model.calls[0] == 3  # tried together first, then one by one


def test_close_answers_queued_requests_at_once():
    model, batcher = make_batcher(max_batch_size=64, timeout_s=60)
    with futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(batcher.submit, {"x": np.array([5])})
        time.sleep(0.3)  # let it queue; it would wait 60 s for company
        batcher.close()
        assert pending.result(timeout=10)["y"][0] == 10
    assert model.calls == [1]


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"x": np.array(1.0)}, "Batching Run() input tensors must have at least one dimension"),
        ({"x": np.zeros(2), "z": np.zeros(3)}, "Batching Run() input tensors must have equal 0th-dimension size"),
    ],
)
def test_inputs_must_share_a_0th_dimension(inputs, message):
    _, batcher = make_batcher()
    with pytest.raises(ServingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        batcher.submit(inputs)
    batcher.close()


# Through a running server.


@pytest.fixture(scope="module")
def batch_sizes():
    """Rows of every batched model call the servers below make."""
    sizes = []

    class RecordingBatcher(Batcher):
        def __init__(self, run, options):
            def recorded(inputs):
                sizes.append(len(next(iter(inputs.values()))))
                return run(inputs)

            super().__init__(recorded, options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(serving.predictor, "Batcher", RecordingBatcher)
        yield sizes


@pytest.fixture(scope="module")
def servers(batch_sizes, start_server, fake_export, grpc_stubs):
    """(batching stubs, unbatched stubs) for two servers on the same model."""
    batching = BatchingOptions(max_batch_size=64, batch_timeout_micros=300_000)
    with start_server(fake_export, batching=batching) as batched, start_server(fake_export, batching=None) as unbatched:
        stubs = grpc_stubs(batched.grpc_port), grpc_stubs(unbatched.grpc_port)
        yield stubs
        for s in stubs:
            s.channel.close()


@pytest.fixture(scope="module")
def requests(png, predict_request):
    return [
        predict_request({"image_bytes": string_array([png((i * 30, 0, 0))]), "text": string_array(["word " * (i + 1)])})
        for i in range(8)
    ]


def test_server_merges_concurrent_requests_with_unbatched_results(servers, requests, batch_sizes, decode_outputs):
    batched, unbatched = servers
    del batch_sizes[:]
    merged = concurrently(lambda r: decode_outputs(batched.prediction.Predict(r, timeout=30)), [(r,) for r in requests])
    assert sum(batch_sizes) == 8 and len(batch_sizes) < 8
    for request, result in zip(requests, merged):
        alone = decode_outputs(unbatched.prediction.Predict(request, timeout=30))
        for name in alone:
            np.testing.assert_allclose(result[name], alone[name], rtol=1e-6, atol=1e-5)
    assert sum(batch_sizes) == 8  # the unbatched server used no batcher


def test_score_matrix_is_not_batched(servers, png, predict_request, batch_sizes):
    batched, _ = servers
    del batch_sizes[:]
    request = predict_request(
        {"image_bytes": string_array([png()]), "text": string_array(["a", "b"])}, signature="score_matrix"
    )
    concurrently(lambda: batched.prediction.Predict(request, timeout=30), [()] * 4)
    assert batch_sizes == []


def test_only_signatures_the_registry_says_batch_can_be_batched():
    from captioning.export.signatures import SIGNATURES

    assert all(SIGNATURES[name].batches for name in BatchingOptions().signatures)
    with pytest.raises(ValueError, match="cannot batch generate_caption, score_matrix"):
        BatchingOptions(signatures=frozenset({"serving_default", "score_matrix", "generate_caption"}))
