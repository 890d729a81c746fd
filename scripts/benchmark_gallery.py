"""Benchmark of the search page's gallery: a collection of --images photos loaded as thumbnails and as originals.

    python scripts/benchmark_gallery.py
    python scripts/benchmark_gallery.py --images 1000 --width 1600 --height 1200 --repeats 3

Writes --images photo-like JPEGs (smooth gradients and shapes, --width x --height) into a temporary index, starts
`python -m serving.server` on it with the test suite's fake model (the gallery needs no real one: nothing is
embedded here, the points carry random vectors), and fetches what the page fetches, over --connections parallel
connections as a browser does: the gallery's listing, then every image's thumbnail (the first time, when the server
makes it; then from the index's cache) or every original file. Prints medians over --repeats runs and the bytes
each way moves.
"""

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from concurrent import futures

import numpy as np

from captioning.util import cli
from captioning.util.local_ports import child_server, embedded_server_command, free_port

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def photo(rng, width, height) -> bytes:
    """A JPEG like a photo's: a smooth gradient between two random colours, a few discs, mild noise."""
    from PIL import Image, ImageDraw

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (x / width + y / height)[..., None] / 2
    first, second = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    pixels = (first * (1 - t) + second * t + rng.normal(0, 4, (height, width, 1))).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.05, 0.2) * width
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(v) for v in rng.uniform(0, 255, 3)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def fill_index(index_dir, count, width, height, distinct) -> None:
    """`count` photos stored and indexed under random unit vectors, as the indexer would leave them."""
    from captioning.search.index import ImageIndex, point_id
    from captioning.search.store import content_hash

    rng = np.random.default_rng(0)
    # Encoding a big JPEG costs more than anything measured here: --distinct photos, each image one of them with
    # its number after the end-of-image marker (ignored by decoders), so every image is its own content.
    photos = [photo(rng, width, height) for _ in range(min(distinct, count))]
    index = ImageIndex(index_dir)
    try:
        for start in range(0, count, 100):
            ids, payloads, vectors = [], [], []
            for n in range(start, min(count, start + 100)):
                data = photos[n % len(photos)] + n.to_bytes(4, "big")
                digest = content_hash(data)
                index.store.put_image(digest, data)
                ids.append(point_id(digest))
                payloads.append(
                    {
                        "source": f"photo-{n:04d}.jpg",
                        "sha256": digest,
                        "bytes": len(data),
                        "width": width,
                        "height": height,
                        "added": "2026-01-01T00:00:00+00:00",
                        "model_version": 1,
                    }
                )
                vector = rng.normal(size=9)
                vectors.append(vector / np.linalg.norm(vector))
            index.upsert(1, ids, np.array(vectors), payloads)
    finally:
        index.close()


def fetch_all(client, paths, connections) -> tuple:
    """(seconds, bytes) to GET every path over `connections` parallel connections."""

    def get(path):
        response = client.get(path)
        response.raise_for_status()
        return len(response.content)

    started = time.perf_counter()
    with futures.ThreadPoolExecutor(connections) as pool:
        sizes = list(pool.map(get, paths))
    return time.perf_counter() - started, sum(sizes)


def main():
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1200)
    parser.add_argument("--distinct", type=int, default=50, help="different pictures among the images")
    parser.add_argument("--connections", type=int, default=6, help="Chromium's connections per host")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from tests.fake_model import export_fake_model

    with tempfile.TemporaryDirectory() as work:
        index_dir, model_dir = os.path.join(work, "index"), os.path.join(work, "model")
        started = time.perf_counter()
        fill_index(index_dir, args.images, args.width, args.height, args.distinct)
        print(f"wrote {args.images} photos of {args.width}x{args.height} in {time.perf_counter() - started:.0f} s")
        export_fake_model(model_dir, 1)
        rest_port = free_port()
        command = embedded_server_command(model_dir, rest_port, f"--index_dir={index_dir}")
        with child_server(command, rest_port, timeout_seconds=300):
            limits = httpx.Limits(max_connections=args.connections)
            with httpx.Client(base_url=f"http://127.0.0.1:{rest_port}", limits=limits, timeout=300) as client:
                rows = measure(client, args)
        thumbnails = sum(
            os.path.getsize(os.path.join(folder, name))
            for folder, _, names in os.walk(os.path.join(index_dir, "thumbnails"))
            for name in names
        )
    print(
        f"\n{args.images} images of {args.width}x{args.height}, {args.connections} connections, "
        f"median of {args.repeats} (the first thumbnails: one run, they are made then)"
    )
    print(f"{'what the page loads':<44} {'seconds':>8} {'MB':>8} {'vs thumbnails':>14}")
    base = rows[1][1]
    for name, seconds, size in rows:
        print(f"{name:<44} {seconds:8.3f} {size / 2**20:8.1f} {seconds / base:13.1f}x")
    print(f"thumbnail cache on disk: {thumbnails / 2**20:.1f} MB ({thumbnails / args.images / 1024:.1f} KB an image)")


def measure(client, args) -> list:
    listing = client.get("/api/gallery", params={"limit": args.images}).json()
    ids = [entry["id"] for entry in listing["images"]]
    assert len(ids) == args.images, f"the gallery listed {len(ids)} of {args.images} images"
    thumbnails = [f"/api/images/{image_id}/thumbnail" for image_id in ids]
    originals = [f"/api/images/{image_id}/file" for image_id in ids]
    cold = fetch_all(client, thumbnails, args.connections)
    # Interleaved, one run of each in turn, so that every kind of request sees the same load on a shared machine.
    kinds = {
        "listing": ([f"/api/gallery?limit={args.images}"], 1),
        "thumbnails": (thumbnails, args.connections),
        "originals": (originals, args.connections),
        "first_screen": (["/api/gallery?limit=24", *thumbnails[:24]], args.connections),
    }
    runs = {name: [] for name in kinds}
    for _ in range(args.repeats):
        for name, (paths, connections) in kinds.items():
            runs[name].append(fetch_all(client, paths, connections))

    def median(name):
        return statistics.median(seconds for seconds, _ in runs[name]), runs[name][0][1]

    return [
        ("gallery listing (JSON of every image)", *median("listing")),
        ("every thumbnail, from the cache", *median("thumbnails")),
        ("every thumbnail, made on first request", *cold),
        ("every original file", *median("originals")),
        ("first screen: a page of 24 and its thumbnails", *median("first_screen")),
    ]


if __name__ == "__main__":
    sys.exit(cli.call(main))
