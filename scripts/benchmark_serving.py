"""Load benchmark of `python -m serving.server`, with batching on and off.

    python scripts/benchmark_serving.py                          # the fake model
    python scripts/benchmark_serving.py --model_base_path checkpoints/export

For each batching setting it starts the server as a subprocess on free
127.0.0.1 ports; at every --concurrency level, that many clients send Predict
calls (one image/text pair each) back to back for --seconds_per_run, after a
warm-up, and it prints latency percentiles and throughput.
"""

import io
import os
import subprocess
import tempfile
import time
from concurrent import futures

from captioning.util import cli

cli.quiet_start()  # before the imports below load TensorFlow

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from PIL import Image  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

from captioning.inference import tensors  # noqa: E402
from captioning.util.local_ports import embedded_server_command, free_port, stop_process  # noqa: E402

FLAGS = flags.FLAGS

HOST = "127.0.0.1"
MODEL_NAME = "captioner"
TEXT = "a photo of a small dog on the grass"
STARTUP_TIMEOUT_S = 180


def random_png(size):
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


class ServerProcess:
    """`python -m serving.server` on a free loopback port, stopped with SIGTERM."""

    def __init__(self, model_base_path, batching, extra_flags):
        self.port = free_port(HOST)
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            embedded_server_command(
                model_base_path,
                0,
                f"--host={HOST}",
                "--enable_batching" if batching else "--noenable_batching",
                *extra_flags,
                grpc_port=self.port,
            ),
            cwd=repo,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_serving()

    def _wait_until_serving(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        with grpc.insecure_channel(f"{HOST}:{self.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    self._log.seek(0)
                    raise RuntimeError("server exited:\n" + self._log.read().decode()[-3000:])
                try:
                    if (
                        health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                        == health_pb2.HealthCheckResponse.SERVING
                    ):
                        return
                except grpc.RpcError:
                    time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"server not serving after {STARTUP_TIMEOUT_S} s")

    def stop(self):
        stop_process(self._process)
        self._log.close()


def predict_request(image):
    """One image/text pair for serving_default, built once: the clients measure the server, not protobuf."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.inputs["image_bytes"].CopyFrom(tensors.to_proto(tensors.string_array([image])))
    request.inputs["text"].CopyFrom(tensors.to_proto(tensors.string_array([TEXT])))
    return request


def run_load(port, concurrency, seconds, request):
    """(latencies in s, error count, wall time): `concurrency` clients, each on its own channel."""
    channels = [grpc.insecure_channel(f"{HOST}:{port}") for _ in range(concurrency)]
    stubs = [prediction_service_pb2_grpc.PredictionServiceStub(channel) for channel in channels]
    for stub in stubs:  # connect and warm up outside the measurement
        stub.Predict(request, timeout=60)
    latencies, errors = [], []
    start = time.perf_counter()
    deadline = start + seconds

    def client_loop(stub):
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                stub.Predict(request, timeout=60)
            except grpc.RpcError as error:
                errors.append(error)
                continue
            latencies.append(time.perf_counter() - sent)

    with futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client_loop, stubs))
    wall = time.perf_counter() - start
    for channel in channels:
        channel.close()
    return latencies, len(errors), wall


def main(argv):
    del argv
    request = predict_request(random_png(FLAGS.image_size))
    with tempfile.TemporaryDirectory() as scratch:
        base_path = FLAGS.model_base_path
        if base_path is None:
            from tests.fake_model import export_fake_model

            export_fake_model(scratch, 1)
            base_path = scratch
        rows = []
        for batching in (True, False):
            server = ServerProcess(base_path, batching, [f"--{flag}" for flag in FLAGS.server_flags])
            try:
                for concurrency in map(int, FLAGS.concurrency):
                    rows.append(
                        (concurrency, batching, *run_load(server.port, concurrency, FLAGS.seconds_per_run, request))
                    )
            finally:
                server.stop()
    print(
        f"{'concurrency':>11}  {'batching':>8}  {'requests':>8}  {'errors':>6}  {'p50 ms':>8}  "
        f"{'p99 ms':>8}  {'req/s':>8}"
    )
    for concurrency, batching, latencies, errors, wall in rows:
        p50, p99 = np.percentile(latencies, [50, 99]) * 1000 if latencies else (float("nan"),) * 2
        print(
            f"{concurrency:>11}  {'on' if batching else 'off':>8}  {len(latencies):>8}  "
            f"{errors:>6}  {p50:>8.1f}  {p99:>8.1f}  {len(latencies) / wall:>8.1f}"
        )


def define_flags():
    # Defined only when run as a script, so tests can import the load generator
    # next to serving.server, whose --model_base_path would clash.
    flags.DEFINE_string("model_base_path", None, "Export base directory; default: a fake model.")
    flags.DEFINE_list("concurrency", ["1", "8", "32"], "Concurrent clients per run.")
    flags.DEFINE_float("seconds_per_run", 10.0, "How long each run sends requests, after the warm-up.")
    flags.DEFINE_integer("image_size", 64, "Side of the random PNG sent with each request.")
    flags.DEFINE_list("server_flags", [], "Extra flags for serving.server, e.g. max_batch_size=32.")
    cli.define_flag_validators(
        ("model_base_path", os.path.isdir, "must name an export folder (python train.py writes checkpoints/export)"),
        (
            "concurrency",
            lambda values: all(value.isdigit() and int(value) >= 1 for value in values),
            "takes whole numbers of at least 1, e.g. 1,8,32",
        ),
        ("seconds_per_run", lambda value: value > 0, "must be more than 0"),
        ("image_size", lambda value: value >= 1, "must be at least 1"),
    )


if __name__ == "__main__":
    define_flags()
    cli.run(main)
