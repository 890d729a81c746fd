"""Load benchmark of `python -m serving.server`, with batching on and off.

    python scripts/benchmark_serving.py                          # the fake model
    python scripts/benchmark_serving.py --model_base_path checkpoints/export

For each batching setting it starts the server as a subprocess on free
127.0.0.1 ports, sends --requests Predict calls (one image/text pair each) at
every --concurrency level and prints latency percentiles and throughput.
Each run stops after --max_seconds_per_run even if requests remain.
"""
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
import numpy as np
from absl import app, flags
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from serving.client import PredictionClient, PredictionError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model_base_path", None, "Export base directory; default: a fake model.")
flags.DEFINE_list("concurrency", ["1", "8", "32"], "Concurrent clients per run.")
flags.DEFINE_integer("requests", 300, "Requests per run.")
flags.DEFINE_float("max_seconds_per_run", 30.0, "Stop sending after this long.")
flags.DEFINE_integer("image_size", 64, "Side of the random PNG sent with each request.")

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 180


def free_port():
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def random_png(size):
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


class ServerProcess:
    """`python -m serving.server` on a free loopback port, stopped with SIGTERM."""

    def __init__(self, model_base_path, batching):
        self.port = free_port()
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "serving.server", f"--model_base_path={model_base_path}",
             f"--host={HOST}", f"--port={self.port}", "--rest_api_port=0",
             "--enable_batching" if batching else "--noenable_batching"],
            cwd=repo, stdout=self._log, stderr=subprocess.STDOUT)
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
                    if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == \
                            health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"server not serving after {STARTUP_TIMEOUT_S} s")

    def stop(self):
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()


def run_load(port, concurrency, total, max_seconds, image):
    """(latencies in s, errors, wall time) for `total` requests from `concurrency` clients."""
    clients = [PredictionClient(f"{HOST}:{port}", timeout=60) for _ in range(concurrency)]
    for client in clients:  # connect and warm up outside the measurement
        client.score([image], ["warm up"])
    remaining = iter(range(total))
    lock = threading.Lock()
    latencies, errors = [], []
    deadline = time.monotonic() + max_seconds

    def client_loop(client):
        while time.monotonic() < deadline:
            with lock:
                if next(remaining, None) is None:
                    return
            start = time.perf_counter()
            try:
                client.score([image], ["a photo of a small dog on the grass"])
            except PredictionError as error:
                errors.append(error)
                continue
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    with futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client_loop, clients))
    wall = time.perf_counter() - start
    for client in clients:
        client.close()
    return latencies, errors, wall


def main(argv):
    del argv
    image = random_png(FLAGS.image_size)
    with tempfile.TemporaryDirectory() as scratch:
        base_path = FLAGS.model_base_path
        if base_path is None:
            from serving.fake_model import export_fake_model
            export_fake_model(scratch, 1)
            base_path = scratch
        rows = []
        for batching in (True, False):
            server = ServerProcess(base_path, batching)
            try:
                for concurrency in map(int, FLAGS.concurrency):
                    latencies, errors, wall = run_load(server.port, concurrency, FLAGS.requests,
                                                       FLAGS.max_seconds_per_run, image)
                    rows.append((concurrency, batching, latencies, errors, wall))
            finally:
                server.stop()
    print(f"{'concurrency':>11}  {'batching':>8}  {'requests':>8}  {'errors':>6}  {'p50 ms':>8}  "
          f"{'p99 ms':>8}  {'req/s':>8}")
    for concurrency, batching, latencies, errors, wall in rows:
        p50, p99 = np.percentile(latencies, [50, 99]) * 1000 if latencies else (float("nan"),) * 2
        print(f"{concurrency:>11}  {'on' if batching else 'off':>8}  {len(latencies):>8}  "
              f"{len(errors):>6}  {p50:>8.1f}  {p99:>8.1f}  {len(latencies) / wall:>8.1f}")


if __name__ == "__main__":
    app.run(main)
