"""Soak test of the search service: concurrent clients mixing adds and searches, then every add is checked.

    python scripts/soak_search.py                                    # the fake model, 8 clients, 60 s
    python scripts/soak_search.py --model_base_path checkpoints/export --clients 8 --seconds 60

It starts `python -m serving.server --index_dir` (a fresh index) on free loopback ports, runs the clients, and
prints requests, errors, latency percentiles and whether every image added is listed, served and found by a
search over the whole index. Exit code 1 if anything failed.
"""
import argparse
import io
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUERIES = ("a red circle", "a blue square", "a green star", "a yellow cross", "a purple triangle",
           "a white circle left of a gray square", "an orange star")


def unique_png(rng):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), tuple(int(c) for c in rng.integers(0, 256, 3))).save(buffer, "PNG")
    return buffer.getvalue()


def soak(base_url, clients, seconds, seed=0):
    """Runs `clients` threads for `seconds`; returns {requests, errors (messages), added (ids), latencies}."""
    report = {"requests": 0, "errors": [], "added": set(), "latencies": []}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(number):
        rng = np.random.default_rng([seed, number])
        with httpx.Client(base_url=base_url, timeout=60) as http:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                try:
                    if rng.random() < 0.5:
                        response = http.post("/api/images", files={"file": ("soak.png", unique_png(rng))})
                    else:
                        response = http.get("/search", params={"q": random.Random(int(rng.integers(1e9))).choice(
                            QUERIES), "k": 5, "candidates": 16})
                    ok = response.status_code in (200, 201)
                    error = None if ok else f"{response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as failure:
                    response, error = None, f"{type(failure).__name__}: {failure}"
                with lock:
                    report["requests"] += 1
                    report["latencies"].append(time.perf_counter() - started)
                    if error:
                        report["errors"].append(error)
                    elif response.request.method == "POST":
                        report["added"].add(response.json()["id"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return report


def missing_after(base_url, added):
    """The added ids that the index does not list, serve, or return from a search over everything."""
    with httpx.Client(base_url=base_url, timeout=120) as http:
        listed, offset = set(), None
        while True:
            page = http.get("/api/images", params={"limit": 1000, **({"offset": offset} if offset else {})}).json()
            listed |= {image["id"] for image in page["images"]}
            offset = page["next_offset"]
            if not offset:
                break
        count = http.get("/api/images/count").json()["count"]
        found = {row["id"] for row in http.get("/search", params={
            "q": "a picture", "k": max(count, 1), "candidates": max(count, 1)}).json()}
        served = {image_id for image_id in added if http.get(f"/api/images/{image_id}/file").status_code == 200}
    return sorted(set(added) - (listed & found & served))


def _free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_base_path", default=None, help="Export base path (default: the fake model).")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model_base_path = args.model_base_path
        if model_base_path is None:
            sys.path.insert(0, REPO)
            from serving.fake_model import export_fake_model
            model_base_path = os.path.join(scratch, "export")
            export_fake_model(model_base_path, 1)
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "serving.server", f"--model_base_path={model_base_path}",
                                   f"--index_dir={os.path.join(scratch, 'index')}", "--port=0",
                                   f"--rest_api_port={port}"], cwd=REPO)
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    httpx.get(f"{base_url}/api/images/count", timeout=5).raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        sys.exit("the server did not start")
                    time.sleep(0.5)
            report = soak(base_url, args.clients, args.seconds)
            missing = missing_after(base_url, report["added"])
        finally:
            server.terminate()
            server.wait(60)
    latencies = np.array(report["latencies"]) * 1000
    print(f"{args.clients} clients, {args.seconds:g} s: {report['requests']} requests, {len(report['errors'])} errors, "
          f"{len(report['added'])} images added, {len(missing)} of them not findable afterwards; "
          f"latency p50 {np.percentile(latencies, 50):.1f} ms, p99 {np.percentile(latencies, 99):.1f} ms")
    for error in report["errors"][:10]:
        print("error:", error)
    sys.exit(1 if report["errors"] or missing else 0)


if __name__ == "__main__":
    main()
