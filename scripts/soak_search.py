"""Soak test of the search service: concurrent clients mixing adds, deletes and searches of a shared pool of
images, then the index is checked for consistency.

    python scripts/soak_search.py                                    # the fake model, 8 clients, 60 s
    python scripts/soak_search.py --model_base_path checkpoints/export --clients 8 --seconds 60

It starts `python -m serving.server --index_dir` (a fresh index) on free loopback ports and runs the clients:
each request adds an image of the pool (so clients add the same images at once), deletes one, or searches. It
prints requests, errors (a 5xx, or a status the route never gives), latency percentiles, and what the final check
found: every listed entry's file is served and the entry found by a search over the whole index, the count
matches the listing, and no image was answered `201 added` more often than it was deleted plus once. Exit code 1
if anything failed.
"""

import argparse
import collections
import io
import os
import sys
import tempfile
import threading
import time

import httpx
import numpy as np
from PIL import Image

from captioning.util.local_ports import child_server, embedded_server_command, free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUERIES = (
    "a red circle",
    "a blue square",
    "a green star",
    "a yellow cross",
    "a purple triangle",
    "a white circle left of a gray square",
    "an orange star",
)
EXPECTED = {"add": (200, 201), "delete": (204, 404), "search": (200,)}
POOL = 200  # images the clients share; the final search asks for all of them


def pool_images(size, seed=0):
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(size):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), tuple(int(c) for c in rng.integers(0, 256, 3))).save(buffer, "PNG")
        images.append(buffer.getvalue())
    return images


def soak(base_url, clients, seconds, pool=POOL, seed=0):
    """Runs `clients` threads for `seconds`; returns {requests, errors (messages), latencies, answers: {id: Counter
    of "201"/"200"/"204"/"404"}}."""
    images = pool_images(pool, seed)
    report = {"requests": 0, "errors": [], "latencies": [], "answers": collections.defaultdict(collections.Counter)}
    known = {}  # pool index -> id, once an add answered
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(number):
        rng = np.random.default_rng([seed, number])
        with httpx.Client(base_url=base_url, timeout=60) as http:
            while time.monotonic() < stop_at:
                pick, roll = int(rng.integers(pool)), rng.random()
                with lock:
                    image_id = known.get(pick)
                started = time.perf_counter()
                try:
                    if roll < 0.45 or image_id is None:
                        kind, response = "add", http.post("/api/images", files={"file": ("soak.png", images[pick])})
                    elif roll < 0.65:
                        kind, response = "delete", http.delete(f"/api/images/{image_id}")
                    else:
                        kind, response = (
                            "search",
                            http.get(
                                "/search",
                                params={"q": QUERIES[int(rng.integers(len(QUERIES)))], "k": 5, "candidates": 16},
                            ),
                        )
                    error = (
                        None
                        if response.status_code in EXPECTED[kind]
                        else f"{kind} {response.status_code}: {response.text[:200]}"
                    )
                except httpx.HTTPError as failure:
                    kind, response, error = None, None, f"{type(failure).__name__}: {failure}"
                with lock:
                    report["requests"] += 1
                    report["latencies"].append(time.perf_counter() - started)
                    if error:
                        report["errors"].append(error)
                    elif kind == "add":
                        known[pick] = response.json()["id"]
                        report["answers"][known[pick]][str(response.status_code)] += 1
                    elif kind == "delete":
                        report["answers"][image_id][str(response.status_code)] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return report


def problems_after(base_url, report):
    """What the final state breaks: entries without their file or not found, a count that is not the listing's,
    more `201 added` answers for an image than its deletes plus one."""
    found_problems = []
    with httpx.Client(base_url=base_url, timeout=120) as http:
        listed, offset = [], None
        while True:
            page = http.get("/api/images", params={"limit": 1000, **({"offset": offset} if offset else {})}).json()
            listed += [image["id"] for image in page["images"]]
            offset = page["next_offset"]
            if not offset:
                break
        count = http.get("/api/images/count").json()["count"]
        if count != len(listed):
            found_problems.append(f"count {count} but {len(listed)} listed")
        found = {
            row["id"]
            for row in http.get(
                "/search", params={"q": "a picture", "k": max(count, 1), "candidates": max(count, 1)}
            ).json()
        }
        for image_id in listed:
            if http.get(f"/api/images/{image_id}/file").status_code != 200:
                found_problems.append(f"{image_id} is listed but its file is not served")
            if image_id not in found:
                found_problems.append(f"{image_id} is listed but a search over everything does not find it")
    for image_id, answers in report["answers"].items():
        if answers["201"] > answers["204"] + 1:
            found_problems.append(f"{image_id} was added {answers['201']} times but deleted {answers['204']} times")
    return found_problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_base_path", default=None, help="Export base path (default: the fake model).")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--pool", type=int, default=POOL, help="Images the clients add and delete.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model_base_path = args.model_base_path
        if model_base_path is None:
            sys.path.insert(0, REPO)
            from tests.fake_model import export_fake_model

            model_base_path = os.path.join(scratch, "export")
            export_fake_model(model_base_path, 1)
        port = free_port()
        command = embedded_server_command(
            model_base_path,
            port,
            f"--index_dir={os.path.join(scratch, 'index')}",
            f"--max_search_results={max(args.pool, 100)}",
            f"--max_search_candidates={max(args.pool, 256)}",
        )
        base_url = f"http://127.0.0.1:{port}"
        with child_server(command, port, timeout_seconds=600, cwd=REPO, stdout=None, stderr=None):
            report = soak(base_url, args.clients, args.seconds, args.pool)
            problems = problems_after(base_url, report)
    latencies = np.array(report["latencies"]) * 1000
    tally = collections.Counter()
    for answers in report["answers"].values():
        tally.update(answers)
    print(
        f"{args.clients} clients, {args.seconds:g} s: {report['requests']} requests, {len(report['errors'])} errors; "
        f"{tally['201']} added, {tally['200']} already in, {tally['204']} deleted, {tally['404']} already gone; "
        f"{len(problems)} problems in the final state; "
        f"latency p50 {np.percentile(latencies, 50):.1f} ms, p99 {np.percentile(latencies, 99):.1f} ms"
    )
    for line in report["errors"][:10] + problems[:10]:
        print("error:", line)
    sys.exit(1 if report["errors"] or problems else 0)


if __name__ == "__main__":
    main()
