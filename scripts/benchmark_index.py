"""Benchmark of the image index: the embedded engine (Qdrant Edge) at 100,000 and 1,000,000 images, against the
embedded index of earlier versions (qdrant-client's local mode), and float16 vs float32 cached features.

    python scripts/benchmark_index.py --model_dir checkpoints/export
    python scripts/benchmark_index.py --model_dir checkpoints/export --parts index,features --vectors 100000
    python scripts/benchmark_index.py --model_dir checkpoints/export --parts million --million 1000000

What it measures, in one process per part (a part's peak memory is its own):

- index: --real_images unseen synthetic scenes are indexed with the model (images/s, split into model time,
  store files and index updates). The index is then grown to --vectors points by noisy copies of those real
  embeddings (each copy points at its original's image and features, so stage 2 scores real features): the
  storage rate at that size, stage 1 (the index's search alone) exact and with HNSW at each --ef (p50/p99 and
  recall@16/@64 against an exact numpy scan), the HNSW build time, the whole two-stage query (text embedding,
  stage 1, stage 2 from cached features) at K=16 and K=64, the index's open time, disk per image and peak memory.
  The same points are then written to qdrant-client's local mode (the earlier embedded index) for the before/after.
- million: --million clustered vectors of the model's width (noisy copies of the real embeddings), stage 1 exact
  and with HNSW; the HNSW build runs in a child process bounded by --build_timeout seconds (it holds the GIL).
- features: for --feature_queries captions, the K=64 candidates scored from float32 and from float16 features:
  stage 2's time (load + score) and how far the two agree (same top 10, rank correlation, largest difference).

Embedding 100,000 images with the model takes hours on 2 shared cores, hence the noisy copies: the model-side
rate is measured on the real images, the storage side at full size.
"""
import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings

import numpy as np

from captioning.data import scene_captions, synthetic
from captioning.util.memory import peak_memory_mb

REAL_SEED = 7_000_002  # scenes no training run uses (training: --seed and --seed + 1)
QUERY_SEED = 11
COPY_NOISE = 0.2  # norm of the noise added to a real embedding before normalising: copies stay near it


def percentiles(seconds) -> tuple:
    return 1000 * np.percentile(seconds, 50), 1000 * np.percentile(seconds, 99)


def folder_bytes(path) -> int:
    return sum(os.path.getsize(os.path.join(folder, name)) for folder, _, names in os.walk(path) for name in names)


def noisy_copies(vectors, count, rng) -> tuple:
    """(count unit vectors near randomly chosen rows of `vectors`, the chosen rows)."""
    base = rng.integers(0, len(vectors), count)
    noise = rng.normal(size=(count, vectors.shape[1]))
    noise *= COPY_NOISE / np.linalg.norm(noise, axis=1, keepdims=True)
    copies = vectors[base] + noise
    return (copies / np.linalg.norm(copies, axis=1, keepdims=True)).astype(np.float32), base


class Timed:
    """Adds up the seconds spent in some methods of an object (the model's, the index's)."""

    def __init__(self, target, names):
        self.seconds = 0.0
        for name in names:
            setattr(target, name, self._wrap(getattr(target, name)))

    def _wrap(self, method):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
        return timed


def query_texts(count):
    return [scene_captions.full_caption(scene) for scene in synthetic.generate_scenes(count, seed=QUERY_SEED)]


def index_real_images(model, index, count):
    """Indexes `count` unseen scenes; returns the figures of that run."""
    from captioning.search.indexing import Indexer

    model_time = Timed(model, ["embed_images", "encode_images"])
    file_time = Timed(index.store, ["put_image", "put_features"])
    update_time = Timed(index, ["upsert", "existing"])
    scenes = synthetic.generate_scenes(count, seed=REAL_SEED)
    # Drawn first: drawing scenes is not indexing.
    items = [(f"scene-{n}.png", lambda data=synthetic.render_scene_png(scene, 64): data)
             for n, scene in enumerate(scenes)]
    result = Indexer(index, model, batch_size=256).add(items, progress=False)
    rest = result.seconds - model_time.seconds - file_time.seconds - update_time.seconds
    return {"images": len(result.added), "seconds": result.seconds, "model_s": model_time.seconds,
            "checks_s": rest, "files_s": file_time.seconds, "index_s": update_time.seconds}


def grow(index, version, vectors, payloads, total, rng, batch=256) -> dict:
    """Adds noisy copies of the real points until the index holds `total`; returns the storage rate."""
    count = total - len(vectors)
    copies, base = noisy_copies(vectors, count, rng)
    started = time.perf_counter()
    for start in range(0, count, batch):
        rows = range(start, min(start + batch, count))
        index.upsert(version, [str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | n)) for n in rows],
                     copies[start:start + batch], [{**payloads[base[n]], "source": f"copy-{n}"} for n in rows])
    seconds = time.perf_counter() - started
    return {"copies": count, "seconds": seconds, "per_second": count / seconds, "vectors": copies}


def stage1_figures(search, text_vectors, exact_top) -> dict:
    """p50/p99 of `search(vector, 64)` and its recall@16/@64 against `exact_top` [Q, 64]."""
    times, recall16, recall64 = [], [], []
    for vector, truth in zip(text_vectors, exact_top):
        started = time.perf_counter()
        found = search(vector, 64)
        times.append(time.perf_counter() - started)
        recall16.append(len(set(found[:16]) & set(truth[:16].tolist())) / 16)
        recall64.append(len(set(found) & set(truth.tolist())) / 64)
    p50, p99 = percentiles(times)
    return {"p50": p50, "p99": p99, "recall16": float(np.mean(recall16)), "recall64": float(np.mean(recall64))}


def run_index(model, args):
    from captioning.search import edge_engine
    from captioning.search.index import ImageIndex
    from captioning.search.retrieval import Searcher

    work = tempfile.mkdtemp(prefix="benchmark_index-", dir=args.work_dir)
    rng = np.random.default_rng(0)
    index_dir = os.path.join(work, "index")
    index = ImageIndex(index_dir)
    version = model.version
    indexing = index_real_images(model, index, args.real_images)
    entries = list(index.all_entries(version, with_vectors=True))
    ids = [image_id for image_id, _, _ in entries]
    payloads = [payload for _, payload, _ in entries]
    real = np.stack([vector for _, _, vector in entries])
    growth = grow(index, version, real, payloads, args.vectors, rng)
    everything = np.concatenate([real, growth.pop("vectors")])
    position = {image_id: n for n, image_id in enumerate(ids)}  # ids of copies are resolved through the index
    texts = query_texts(args.queries + 10)
    text_vectors = np.stack([model.embed_text(text) for text in texts])
    exact_top = np.argsort(-(text_vectors @ everything.T), axis=1)[:, :64]
    # The index returns ids; map them to rows of `everything` (copies: their order of insertion).
    copy_ids = {}
    for image_id, payload in index.all_entries(version):
        if payload["source"].startswith("copy-"):
            copy_ids[image_id] = len(real) + int(payload["source"][5:])
    position.update(copy_ids)

    def rows_of(hits):
        return [position[hit.id] for hit in hits]

    def searching(params):
        """Stage 1 with these search parameters, straight on the shard: rows of `everything`."""
        from qdrant_edge import Query, QueryRequest

        shard = index.engine._shard(version)
        return lambda vector, limit: [position[str(point.id)] for point in shard.query(QueryRequest(
            query=Query.Nearest(vector.tolist()), limit=limit, params=params))]

    from qdrant_edge import SearchParams

    stage1 = {"exact, before the HNSW build": stage1_figures(searching(SearchParams(exact=True)), text_vectors,
                                                             exact_top)}
    started = time.perf_counter()
    index.optimize(version)
    build_seconds = time.perf_counter() - started
    default_ef = edge_engine.hnsw_ef(index.count(version))
    for ef in args.ef:
        stage1[f"HNSW, ef {ef}"] = stage1_figures(searching(SearchParams(hnsw_ef=ef)), text_vectors, exact_top)
    stage1[f"the index's search (ef {default_ef})"] = stage1_figures(
        lambda v, k: rows_of(index.search(version, v, k)), text_vectors, exact_top)
    stage1["exact"] = stage1_figures(searching(SearchParams(exact=True)), text_vectors, exact_top)

    queries = {}
    for candidates in (16, 64):
        searcher = Searcher(index, model, stage2="features")
        for text in texts[:10]:
            searcher.search(text, k=10, candidates=candidates)
        only_stage1, whole = [], []
        for text in texts[10:]:
            started = time.perf_counter()
            vector = model.embed_text(text)
            embedded = time.perf_counter()
            index.search(version, vector, candidates)
            only_stage1.append(time.perf_counter() - embedded)
            started = time.perf_counter()
            searcher.search(text, k=10, candidates=candidates)
            whole.append(time.perf_counter() - started)
        queries[candidates] = {"stage1": percentiles(only_stage1), "whole": percentiles(whole)}
    count = index.count(version)
    index.close()
    started = time.perf_counter()
    reopened = ImageIndex(index_dir)
    reopened.search(version, text_vectors[0], 64)
    open_seconds = time.perf_counter() - started
    reopened.close()
    disk = {"index": folder_bytes(os.path.join(index_dir, "edge")) / count,
            "features": folder_bytes(os.path.join(index_dir, "features")) / len(real),
            "image": folder_bytes(os.path.join(index_dir, "images")) / len(real)}
    peak = peak_memory_mb()
    before = local_mode_figures(work, version, ids, payloads, everything, copy_ids, text_vectors, exact_top,
                                args.local_queries)
    shutil.rmtree(work)

    print(f"\nIndexing {indexing['images']} unseen synthetic images (64x64 PNG) with model {args.model_dir}, "
          "batches of 256\n")
    print("| images/s | model (embed + encode) | decode checks, hashes | storage: image + features files | storage: "
          "index updates | storage share |")
    print("|---:|---:|---:|---:|---:|---:|")
    total = indexing["seconds"]
    storage = indexing["files_s"] + indexing["index_s"]
    print(f"| {indexing['images'] / total:.0f} | {indexing['model_s']:.1f} s ({100 * indexing['model_s'] / total:.0f}%)"
          f" | {indexing['checks_s']:.1f} s | {indexing['files_s']:.2f} s | {indexing['index_s']:.2f} s | "
          f"{100 * storage / total:.1f}% |")
    print(f"\nGrown to {count} points by {growth['copies']} noisy copies of those embeddings: "
          f"{growth['per_second']:.0f} points/s written (batches of 256, payloads included); HNSW build "
          f"(m {edge_engine.HNSW_M}, ef_construct {edge_engine.HNSW_EF_CONSTRUCT}) {build_seconds:.0f} s\n")
    print(f"Stage 1 alone (the index's search, top 64), {len(texts)} caption queries, recall against an exact "
          "numpy scan\n")
    print("| search | p50 ms | p99 ms | recall@16 | recall@64 |")
    print("|---|---:|---:|---:|---:|")
    for name, f in stage1.items():
        print(f"| {name} | {f['p50']:.2f} | {f['p99']:.2f} | {f['recall16']:.3f} | {f['recall64']:.3f} |")
    print(f"\nWhole query (embed_text + stage 1 + stage 2 from cached features, k=10) at {count} images, "
          f"HNSW ef {default_ef}\n")
    print("| K | stage 1 p50 / p99 ms | whole query p50 / p99 ms |")
    print("|---:|---:|---:|")
    for candidates, f in queries.items():
        print(f"| {candidates} | {f['stage1'][0]:.2f} / {f['stage1'][1]:.2f} | {f['whole'][0]:.1f} / "
              f"{f['whole'][1]:.1f} |")
    print(f"\nOpen the index and answer one search: {open_seconds:.2f} s. Peak memory (model included): {peak:.0f} MB."
          f"\nDisk per image: index {disk['index'] / 1024:.1f} KB, cached features {disk['features'] / 1024:.1f} KB,"
          f" the image itself {disk['image'] / 1024:.1f} KB (64x64 PNG)")
    print(f"\nBefore / after on the same {count} points (storage only: no model)\n")
    print("| embedded index | write points/s | stage 1 p50 / p99 ms | reopen s | disk per point KB |")
    print("|---|---:|---:|---:|---:|")
    print(f"| qdrant-client local mode (before) | {before['per_second']:.0f} | {before['p50']:.1f} / "
          f"{before['p99']:.1f} | {before['reopen']:.2f} | {before['disk'] / 1024:.2f} |")
    edge = stage1[f"the index's search (ef {default_ef})"]
    print(f"| Qdrant Edge (now) | {growth['per_second']:.0f} | {edge['p50']:.2f} / {edge['p99']:.2f} | "
          f"{open_seconds:.2f} | {disk['index'] / 1024:.2f} |")


def local_mode_figures(work, version, ids, payloads, vectors, copy_ids, text_vectors, exact_top, queries) -> dict:
    """The earlier embedded index on the same points: write rate, stage 1, reopen time, disk."""
    from qdrant_client import QdrantClient

    from captioning.search.server_engine import ServerEngine

    path = os.path.join(work, "local_mode")
    warnings.filterwarnings("ignore", message="Local mode is not recommended", category=UserWarning)  # we know
    engine = ServerEngine(QdrantClient(path=path))
    all_ids = ids + sorted(copy_ids, key=copy_ids.get)
    all_payloads = payloads + [{**payloads[0], "source": f"copy-{n}"} for n in range(len(copy_ids))]
    started = time.perf_counter()
    for start in range(0, len(all_ids), 256):
        engine.upsert(version, all_ids[start:start + 256], vectors[start:start + 256], all_payloads[start:start + 256])
    per_second = len(all_ids) / (time.perf_counter() - started)
    times = []
    for vector in text_vectors[:queries]:
        started = time.perf_counter()
        engine.search(version, vector, 64)
        times.append(time.perf_counter() - started)
    engine.close()
    started = time.perf_counter()
    ServerEngine(QdrantClient(path=path)).close()
    reopen = time.perf_counter() - started
    p50, p99 = percentiles(times)
    return {"per_second": per_second, "p50": p50, "p99": p99, "reopen": reopen,
            "disk": folder_bytes(path) / len(all_ids)}


def run_million(model, args):
    """Exact figures here; the HNSW build and its figures in a child process bounded by --build_timeout."""
    work = tempfile.mkdtemp(prefix="benchmark_million-", dir=args.work_dir)
    scenes = synthetic.generate_scenes(args.real_images, seed=REAL_SEED)
    real = model.embed_images([synthetic.render_scene_png(scene, 64) for scene in scenes])
    rng = np.random.default_rng(1)
    vectors, _ = noisy_copies(real, args.million, rng)
    texts = query_texts(args.queries)
    text_vectors = np.stack([model.embed_text(text) for text in texts])
    np.save(os.path.join(work, "vectors.npy"), vectors)
    np.save(os.path.join(work, "queries.npy"), text_vectors)
    del vectors
    command = [sys.executable, os.path.abspath(__file__), "--million_child", work, "--ef",
               ",".join(map(str, args.ef))]
    print(f"\nStage 1 at {args.million} clustered vectors of width {real.shape[1]} (noisy copies of "
          f"{len(real)} real image embeddings), top 64, {len(texts)} caption queries\n")
    print("| search | p50 ms | p99 ms | recall@16 | recall@64 |")
    print("|---|---:|---:|---:|---:|")
    lines = []

    def read(stream):
        for line in stream:
            lines.append(json.loads(line))
            row = lines[-1]
            if "p50" in row:
                print(f"| {row['name']} | {row['p50']:.2f} | {row['p99']:.2f} | {row['recall16']:.3f} | "
                      f"{row['recall64']:.3f} |", flush=True)

    try:
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
            reader = threading.Thread(target=read, args=(child.stdout,), daemon=True)
            reader.start()
            try:
                child.wait(timeout=args.build_timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                print(f"| HNSW | not done within --build_timeout {args.build_timeout:.0f} s | | | |")
            reader.join(timeout=10)
    finally:
        shutil.rmtree(work)
    for row in lines:
        if "seconds" in row:
            print(f"\n{row['name']}: {row['seconds']:.0f} s")


def million_child(work, efs):
    """Child of run_million: one JSON line per figure, as soon as it is known."""
    from qdrant_edge import Query, QueryRequest, SearchParams

    from captioning.search import edge_engine

    vectors = np.load(os.path.join(work, "vectors.npy"))
    text_vectors = np.load(os.path.join(work, "queries.npy"))
    exact_top = np.argsort(-(text_vectors @ vectors.T), axis=1)[:, :64]
    engine = edge_engine.EdgeEngine(os.path.join(work, "edge"))
    started = time.perf_counter()
    for start in range(0, len(vectors), 1024):
        rows = range(start, min(start + 1024, len(vectors)))
        engine.upsert(1, list(rows), vectors[start:start + 1024], [{} for _ in rows])
    print(json.dumps({"name": f"writing {len(vectors)} points", "seconds": time.perf_counter() - started}),
          flush=True)
    shard = engine._shard(1)

    def search(params):
        return lambda vector, limit: [int(p.id) for p in shard.query(QueryRequest(
            query=Query.Nearest(vector.tolist()), limit=limit, params=params))]

    numpy_times = []
    for vector in text_vectors:
        started = time.perf_counter()
        scores = vectors @ vector
        np.argpartition(-scores, 64)[:64]
        numpy_times.append(time.perf_counter() - started)
    p50, p99 = percentiles(numpy_times)
    print(json.dumps({"name": "numpy scan (one matrix product)", "p50": p50, "p99": p99, "recall16": 1.0,
                      "recall64": 1.0}), flush=True)
    print(json.dumps({"name": "Edge exact", **stage1_figures(search(SearchParams(exact=True)), text_vectors,
                                                               exact_top)}), flush=True)
    started = time.perf_counter()
    engine.optimize(1)
    print(json.dumps({"name": "HNSW build", "seconds": time.perf_counter() - started}), flush=True)
    for ef in efs:
        print(json.dumps({"name": f"Edge HNSW, ef {ef}", **stage1_figures(search(SearchParams(hnsw_ef=ef)),
                                                                            text_vectors, exact_top)}), flush=True)
    engine.close()


def run_features(model, args):
    """Stage 2 from float32 vs float16 features: time (load + score) and agreement of the rankings."""
    scenes = synthetic.generate_scenes(args.real_images, seed=REAL_SEED)
    images = [synthetic.render_scene_png(scene, 64) for scene in scenes]
    vectors = model.embed_images(images)
    texts = query_texts(args.feature_queries)
    work = tempfile.mkdtemp(prefix="benchmark_features-", dir=args.work_dir)
    times = {"float32": [], "float16": []}
    same_top10, correlations, largest = [], [], 0.0
    try:
        for n, text in enumerate(texts):
            chosen = np.argsort(-(vectors @ model.embed_text(text)))[:64]
            features = model.encode_images([images[i] for i in chosen])
            scores = {}
            for dtype in times:
                paths = []
                for row, values in enumerate(features):
                    buffer = io.BytesIO()
                    np.save(buffer, values.astype(dtype))
                    paths.append(os.path.join(work, f"{dtype}-{n}-{row}.npy"))
                    with open(paths[-1], "wb") as f:
                        f.write(buffer.getvalue())
                started = time.perf_counter()
                loaded = np.stack([np.load(path) for path in paths]).astype(np.float32)
                scores[dtype] = model.score_features(loaded, text)["log_likelihood"]
                times[dtype].append(time.perf_counter() - started)
            order32, order16 = np.argsort(-scores["float32"]), np.argsort(-scores["float16"])
            same_top10.append(bool(np.array_equal(order32[:10], order16[:10])))
            ranks32, ranks16 = np.argsort(order32), np.argsort(order16)  # Spearman: correlation of the ranks
            correlations.append(float(np.corrcoef(ranks32, ranks16)[0, 1]))
            largest = max(largest, float(np.max(np.abs(scores["float32"] - scores["float16"]))))
    finally:
        shutil.rmtree(work)
    size = features[0].size
    print(f"\nStage 2 from cached features, K=64, {len(texts)} queries (features {features.shape[1:]} per image)\n")
    print("| stored as | disk per image | stage 2 p50 ms (load + score) | same top 10 as float32 | rank correlation "
          "(min) | largest log-likelihood difference |")
    print("|---|---:|---:|---:|---:|---:|")
    for dtype, itemsize in (("float32", 4), ("float16", 2)):
        p50, _ = percentiles(times[dtype])
        agreement = ("(reference)", "", "") if dtype == "float32" else (
            f"{np.mean(same_top10):.3f}", f"{np.min(correlations):.5f}", f"{largest:.5f}")
        print(f"| {dtype} | {size * itemsize / 1024:.0f} KB | {p50:.1f} | {' | '.join(agreement)} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", default=os.path.join("checkpoints", "export"))
    parser.add_argument("--parts", default="index,features,million")
    parser.add_argument("--real_images", type=int, default=3000, help="Unseen scenes embedded by the model.")
    parser.add_argument("--vectors", type=int, default=100_000, help="Index size for the index part.")
    parser.add_argument("--million", type=int, default=1_000_000, help="Vectors for the million part.")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--local_queries", type=int, default=50, help="Stage-1 queries on the local mode (slow).")
    parser.add_argument("--feature_queries", type=int, default=50)
    parser.add_argument("--ef", default="64,128,256,512", help="HNSW search-time ef values to measure.")
    parser.add_argument("--build_timeout", type=float, default=1800, help="Seconds for the 1,000,000-vector part.")
    parser.add_argument("--work_dir", default=None, help="Where the temporary indexes go (default: the temp dir).")
    parser.add_argument("--million_child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.ef = [int(ef) for ef in args.ef.split(",")]
    if args.million_child:
        million_child(args.million_child, args.ef)
        return
    from captioning.search.search_model import open_local

    model = open_local(args.model_dir)
    parts = args.parts.split(",")
    if "index" in parts:
        run_index(model, args)
    if "features" in parts:
        run_features(model, args)
    if "million" in parts:
        run_million(model, args)


if __name__ == "__main__":
    main()
