"""Benchmark of the image index: the embedded engine (Qdrant Edge) at 100,000 and 1,000,000 images, against the
embedded index of earlier versions (qdrant-client's local mode), and float16 vs float32 cached features.

    python scripts/benchmark_index.py --model_dir checkpoints/export
    python scripts/benchmark_index.py --model_dir checkpoints/export --parts index,features --vectors 100000
    python scripts/benchmark_index.py --model_dir checkpoints/export --parts million --million 1000000
    python scripts/benchmark_index.py --parts levers --lever_vectors 100000
    python scripts/benchmark_index.py --parts levers --lever_vectors 1000000 --levers "as before"

What it measures, in one process per part (a part's peak memory is its own):

- levers: --lever_vectors clustered vectors of width --dim (2,000 clusters per 100,000) and queries near stored
  vectors; one build per lever of LEVERS (HNSW m, ef_construct, int8 or binary codes), each in a child process,
  and on it stage 1 at several search settings (ef, rescoring, oversampling), timed in turn with an exact numpy
  scan on each query (medians, ratio), recall@10 against exact, build time and the index's resident memory.
- index: --real_images unseen synthetic scenes are indexed with the model (images/s, split into model time,
  store files and index updates). The index is then grown to --vectors points by noisy copies of those real
  embeddings (each copy points at its original's image and features, so stage 2 scores real features): the
  storage rate at that size, stage 1 (the index's search alone) exact and with HNSW at each --ef (p50/p99 and
  recall@16/@64 against an exact numpy scan), the HNSW build time, the whole two-stage query (text embedding,
  stage 1, stage 2 from cached features) at K=16 and K=64, the index's open time, disk per image and peak memory.
  The same points are then written to qdrant-client's local mode (the earlier embedded index) for the before/after.
- million: the chosen settings (captioning/search/engine.py) at --million clustered vectors as in levers, against
  the index as it was (float vectors, ef growing with the collection) and other ef: stage 1 and the numpy scan in
  turn, recall@10, resident memory, write rate, search before the graph is built, build and reopen time, disk per
  vector; then the whole query (embed_text, stage 1, stage 2 = score_features of the K candidates' features read
  from files) with its breakdown, and how many of its reranked top 10 match those reranked from the exact top K.
  The build runs in a child process bounded by --build_timeout seconds (it holds the GIL).
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
from captioning.search.engine import search_ef
from captioning.util import cli
from captioning.util.memory import peak_memory_mb

REAL_SEED = 7_000_002  # scenes no training run uses (training: --seed and --seed + 1)
QUERY_SEED = 11
COPY_NOISE = 0.2  # norm of the noise added to a real embedding before normalising: copies stay near it
CLUSTER_SPREAD, QUERY_NOISE = 0.6, 0.3  # norms of the noise around a cluster's centre, around a query's vector
UNBUILT_QUERIES = 20  # searched before the HNSW build (each a scan)
WARM_QUERIES = 5  # first queries of a row, left out of its medians


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
    items = [
        (f"scene-{n}.png", lambda data=synthetic.render_scene_png(scene, 64): data) for n, scene in enumerate(scenes)
    ]
    result = Indexer(index, model, batch_size=256).add(items, progress=False)
    rest = result.seconds - model_time.seconds - file_time.seconds - update_time.seconds
    return {
        "images": len(result.added),
        "seconds": result.seconds,
        "model_s": model_time.seconds,
        "checks_s": rest,
        "files_s": file_time.seconds,
        "index_s": update_time.seconds,
    }


def grow(index, version, vectors, payloads, total, rng, batch=256) -> dict:
    """Adds noisy copies of the real points until the index holds `total`; returns the storage rate."""
    count = total - len(vectors)
    copies, base = noisy_copies(vectors, count, rng)
    started = time.perf_counter()
    for start in range(0, count, batch):
        rows = range(start, min(start + batch, count))
        index.upsert(
            version,
            [str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | n)) for n in rows],
            copies[start : start + batch],
            [{**payloads[base[n]], "source": f"copy-{n}"} for n in rows],
        )
    seconds = time.perf_counter() - started
    return {"copies": count, "seconds": seconds, "per_second": count / seconds, "vectors": copies, "base": base}


def stage1_figures(search, text_vectors, exact_top, image_of) -> dict:
    """p50/p99 of `search(vector, 64)`, its recall@16/@64 against `exact_top` [Q, 64], and its image recall@16:
    the share of the exact top 16's images (`image_of` a row: a copy is its original's image and features) among
    the images of its own top 16, the candidates stage 2 reranks. Copies of one image are near-ties, so row recall
    undercounts what the reranker gets."""
    times, recall16, recall64, images16 = [], [], [], []
    for vector, truth in zip(text_vectors, exact_top):
        started = time.perf_counter()
        found = search(vector, 64)
        times.append(time.perf_counter() - started)
        recall16.append(len(set(found[:16]) & set(truth[:16].tolist())) / 16)
        recall64.append(len(set(found) & set(truth.tolist())) / 64)
        wanted = set(image_of[truth[:16]].tolist())
        images16.append(len(wanted & set(image_of[found[:16]].tolist())) / len(wanted))
    p50, p99 = percentiles(times)
    return {
        "p50": p50,
        "p99": p99,
        "recall16": float(np.mean(recall16)),
        "recall64": float(np.mean(recall64)),
        "images16": float(np.mean(images16)),
    }


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
    image_of = np.concatenate([np.arange(len(real)), growth.pop("base")])
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
        return lambda vector, limit: [
            position[str(point.id)]
            for point in shard.query(QueryRequest(query=Query.Nearest(vector.tolist()), limit=limit, params=params))
        ]

    from qdrant_edge import SearchParams

    stage1 = {
        "exact, before the HNSW build": stage1_figures(
            searching(SearchParams(exact=True)), text_vectors, exact_top, image_of
        )
    }
    started = time.perf_counter()
    index.optimize(version)
    build_seconds = time.perf_counter() - started
    default_ef = search_ef(index.count(version), 64)
    for ef in args.ef:
        stage1[f"HNSW, ef {ef}"] = stage1_figures(
            searching(edge_engine.search_params(64, ef)), text_vectors, exact_top, image_of
        )
    stage1[f"the index's search (ef {default_ef})"] = stage1_figures(
        lambda v, k: rows_of(index.search(version, v, k)), text_vectors, exact_top, image_of
    )
    stage1["exact"] = stage1_figures(searching(SearchParams(exact=True)), text_vectors, exact_top, image_of)

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
    disk = {
        "index": folder_bytes(os.path.join(index_dir, "edge")) / count,
        "features": folder_bytes(os.path.join(index_dir, "features")) / len(real),
        "image": folder_bytes(os.path.join(index_dir, "images")) / len(real),
    }
    peak = peak_memory_mb()
    before = (  # the earlier index writes about 600 points a second: --local_queries 0 skips it at a million
        local_mode_figures(
            work, version, ids, payloads, everything, copy_ids, text_vectors, exact_top, args.local_queries
        )
        if args.local_queries
        else None
    )
    shutil.rmtree(work)

    print(
        f"\nIndexing {indexing['images']} unseen synthetic images (64x64 PNG) with model {args.model_dir}, "
        "batches of 256\n"
    )
    print(
        "| images/s | model (embed + encode) | decode checks, hashes | storage: image + features files | storage: "
        "index updates | storage share |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    total = indexing["seconds"]
    storage = indexing["files_s"] + indexing["index_s"]
    print(
        f"| {indexing['images'] / total:.0f} | {indexing['model_s']:.1f} s ({100 * indexing['model_s'] / total:.0f}%)"
        f" | {indexing['checks_s']:.1f} s | {indexing['files_s']:.2f} s | {indexing['index_s']:.2f} s | "
        f"{100 * storage / total:.1f}% |"
    )
    print(
        f"\nGrown to {count} points by {growth['copies']} noisy copies of those embeddings: "
        f"{growth['per_second']:.0f} points/s written (batches of 256, payloads included); HNSW build "
        f"(m {edge_engine.HNSW_M}, ef_construct {edge_engine.HNSW_EF_CONSTRUCT}) {build_seconds:.0f} s\n"
    )
    print(
        f"Stage 1 alone (the index's search, top 64), {len(texts)} caption queries, recall against an exact "
        "numpy scan\n"
    )
    print("| search | p50 ms | p99 ms | recall@16 | recall@64 | image recall@16 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, f in stage1.items():
        print(
            f"| {name} | {f['p50']:.2f} | {f['p99']:.2f} | {f['recall16']:.3f} | {f['recall64']:.3f} | "
            f"{f['images16']:.3f} |"
        )
    print(
        f"\nWhole query (embed_text + stage 1 + stage 2 from cached features, k=10) at {count} images, "
        f"HNSW ef {default_ef}\n"
    )
    print("| K | stage 1 p50 / p99 ms | whole query p50 / p99 ms |")
    print("|---:|---:|---:|")
    for candidates, f in queries.items():
        print(
            f"| {candidates} | {f['stage1'][0]:.2f} / {f['stage1'][1]:.2f} | {f['whole'][0]:.1f} / "
            f"{f['whole'][1]:.1f} |"
        )
    print(
        f"\nOpen the index and answer one search: {open_seconds:.2f} s. Peak memory (model included): {peak:.0f} MB."
        f"\nDisk per image: index {disk['index'] / 1024:.1f} KB, cached features {disk['features'] / 1024:.1f} KB,"
        f" the image itself {disk['image'] / 1024:.1f} KB (64x64 PNG)"
    )
    if before is None:
        return
    print(f"\nBefore / after on the same {count} points (storage only: no model)\n")
    print("| embedded index | write points/s | stage 1 p50 / p99 ms | reopen s | disk per point KB |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| qdrant-client local mode (before) | {before['per_second']:.0f} | {before['p50']:.1f} / "
        f"{before['p99']:.1f} | {before['reopen']:.2f} | {before['disk'] / 1024:.2f} |"
    )
    edge = stage1[f"the index's search (ef {default_ef})"]
    print(
        f"| Qdrant Edge (now) | {growth['per_second']:.0f} | {edge['p50']:.2f} / {edge['p99']:.2f} | "
        f"{open_seconds:.2f} | {disk['index'] / 1024:.2f} |"
    )


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
        engine.upsert(
            version, all_ids[start : start + 256], vectors[start : start + 256], all_payloads[start : start + 256]
        )
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
    return {
        "per_second": per_second,
        "p50": p50,
        "p99": p99,
        "reopen": reopen,
        "disk": folder_bytes(path) / len(all_ids),
    }


def clustered_vectors(count, dim, rng) -> np.ndarray:
    """`count` unit vectors around count / 50 random centres (2,000 clusters per 100,000, as in issue 33)."""
    centres = rng.normal(size=(max(1, count // 50), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres[rng.integers(0, len(centres), count)]
    vectors += rng.normal(scale=CLUSTER_SPREAD / np.sqrt(dim), size=(count, dim)).astype(np.float32)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


# Each lever is one build (HNSW m, ef_construct, quantization) and the searches measured on it: first the index as
# it was (float vectors, ef growing with the collection), then the chosen settings, then one change at a time.
LEVERS = [
    ({"change": "as before", "m": 16, "ef_construct": 128}, [{"ef": "adaptive"}, {"ef": 512}, {"ef": 128}, {"ef": 64}]),
    (
        {"change": "int8 codes", "m": 16, "ef_construct": 128, "quantization": "int8"},
        [
            {"ef": 512, "rescore": False},
            {"ef": 512, "rescore": True, "oversampling": 1},
            {"ef": "adaptive", "rescore": True, "oversampling": 2},
            {"ef": 128, "rescore": True, "oversampling": 2},
            {"ef": 512, "rescore": True, "oversampling": 2},
        ],
    ),
    (
        {"change": "binary codes", "m": 16, "ef_construct": 128, "quantization": "binary"},
        [{"ef": 512, "rescore": True, "oversampling": 2}, {"ef": 512, "rescore": True, "oversampling": 4}],
    ),
    (
        {"change": "ef_construct", "m": 16, "ef_construct": 64, "quantization": "int8"},
        [{"ef": 512, "rescore": True, "oversampling": 2}],
    ),
    (
        {"change": "HNSW m", "m": 8, "ef_construct": 128, "quantization": "int8"},
        [{"ef": 512, "rescore": True, "oversampling": 2}],
    ),
]


def clustered_queries(count, dim, queries, rng) -> tuple:
    """(clustered_vectors, `queries` unit vectors near randomly chosen ones)."""
    vectors = clustered_vectors(count, dim, rng)
    near = vectors[rng.integers(0, len(vectors), queries)]
    near += rng.normal(scale=QUERY_NOISE / np.sqrt(dim), size=near.shape).astype(np.float32)
    return vectors, near / np.linalg.norm(near, axis=1, keepdims=True)


def run_levers(args):
    """One child process per build of LEVERS on --lever_vectors clustered vectors, queries near stored ones."""
    vectors, queries = clustered_queries(args.lever_vectors, args.dim, args.queries, np.random.default_rng(2))
    print(
        f"\nLevers at {len(vectors)} clustered vectors of width {args.dim} ({len(vectors) // 50} clusters), "
        f"{len(queries)} queries near stored vectors, top {args.candidates}; stage 1 and the numpy scan timed "
        "in turn on each query (medians)\n"
    )
    print("| change | setting | stage-1 p50 ms | scan p50 ms | ratio | recall@10 | build s | index RSS MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    chosen = args.levers.split(",") if args.levers else [build["change"] for build, _ in LEVERS]
    unknown = set(chosen) - {build["change"] for build, _ in LEVERS}
    if unknown:
        sys.exit(f"error: --levers: no lever named {', '.join(sorted(unknown))}")
    for build, searches in (lever for lever in LEVERS if lever[0]["change"] in chosen):

        def row(line, build=build):
            if "stage1" in line:
                print(
                    f"| {build['change']} | m {build['m']}, ef_construct {build['ef_construct']}, "
                    f"{line['name']} | {line['stage1']:.2f} | {line['scan']:.2f} | {line['ratio']:.2f} | "
                    f"{line['recall10']:.3f} | {line['build_s']:.0f} | {line['rss_mb']:.0f} |",
                    flush=True,
                )

        shard_run(args, vectors, queries, {"build": build, "searches": searches}, row)


def run_million(model, args):
    """The chosen settings at --million clustered vectors (queries near stored vectors, as in run_levers): stage 1
    against the numpy scan, memory, build, and the whole query with its breakdown, the model embedding each caption
    and scoring the K candidates' features (a vector's image: a real scene, row modulo --real_images); in a child
    process bounded by --build_timeout (the build holds the GIL)."""
    scenes = synthetic.generate_scenes(args.real_images, seed=REAL_SEED)
    features = model.encode_images([synthetic.render_scene_png(scene, 64) for scene in scenes]).astype(np.float16)
    rng = np.random.default_rng(1)
    vectors, queries = clustered_queries(args.million, args.dim, args.queries, rng)
    texts = query_texts(args.queries)
    print(
        f"\nStage 1 at {len(vectors)} clustered vectors of width {args.dim} ({len(vectors) // 50} clusters), "
        f"{len(queries)} queries near stored vectors, top {args.candidates}; stage 1 and the numpy scan timed in "
        "turn on each query (medians)\n"
    )
    print("| search | stage-1 p50 ms | p99 ms | scan p50 ms | ratio | recall@10 | index RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    from captioning.search import edge_engine

    chosen_ef = search_ef(len(vectors), args.candidates)  # what the index uses at this size
    chosen = {"ef": chosen_ef, "rescore": True, "oversampling": edge_engine.OVERSAMPLING}
    searches = (
        [{"ef": "adaptive", "ignore": True}, {"ef": chosen_ef, "ignore": True}]
        + [
            {"ef": ef, "rescore": True, "oversampling": edge_engine.OVERSAMPLING}
            for ef in ("adaptive", 64, 128, 256)
            if ef != chosen_ef
        ]
        + [chosen]
    )
    build = {
        "change": "chosen",
        "m": edge_engine.HNSW_M,
        "ef_construct": edge_engine.HNSW_EF_CONSTRUCT,
        "quantization": "int8",
    }
    base = np.arange(len(vectors)) % len(features)
    lines = []

    def row(line):
        lines.append(line)
        if "stage1" in line:
            print(
                f"| {line['name']} | {line['stage1']:.2f} | {line['p99']:.2f} | {line['scan']:.2f} | "
                f"{line['ratio']:.2f} | {line['recall10']:.3f} | {line['rss_mb']:.0f} |",
                flush=True,
            )

    shard_run(
        args,
        vectors,
        queries,
        {
            "build": build,
            "searches": searches,
            "whole": {"model_dir": args.model_dir, "texts": texts, "search": chosen},
        },
        row,
        extra={"base": base, "features": features},
    )
    for line in lines:
        if "insert_s" in line:
            print(
                f"\nWrites: {line['points']} points in {line['insert_s']:.0f} s "
                f"({line['points'] / line['insert_s']:.0f}"
                f"/s, batches of 1024); before the graph is built, stage 1 scans: p50 {line['unbuilt_p50']:.1f} ms, "
                f"recall@10 {line['unbuilt_recall10']:.3f}. HNSW + int8 build: {line['build_s']:.0f} s. Reopen: "
                f"{line['open_s']:.2f} s. Disk: {line['disk_per_vector']:.0f} bytes per vector."
            )
        if "whole" in line:
            w = line["whole"]
            print(
                f"\nWhole query at {args.million} images (model {args.model_dir}: embed_text of a caption, stage 1 "
                f"with the chosen settings on a query vector of the set above, stage 2 = score_features of the "
                f"K={args.candidates} candidates' features loaded from float16 files), medians\n"
            )
            print(
                "| embed_text ms | stage 1 ms | stage 2 ms | whole p50 ms | whole p99 ms | reranked top 10 same as "
                "from exact candidates |"
            )
            print("|---:|---:|---:|---:|---:|---:|")
            print(
                f"| {w['embed']:.1f} | {w['stage1']:.2f} | {w['stage2']:.1f} | {w['p50']:.1f} | {w['p99']:.1f} | "
                f"{w['reranked_recall10']:.3f} |"
            )


def shard_run(args, vectors, queries, spec, on_line, extra=None):
    """Runs `spec` in a child process on these vectors and queries; calls `on_line` with each JSON line."""
    work = tempfile.mkdtemp(prefix="benchmark_shard-", dir=args.work_dir)
    try:
        np.save(os.path.join(work, "vectors.npy"), vectors)
        np.save(os.path.join(work, "queries.npy"), queries)
        for name, values in (extra or {}).items():
            if values is not None:
                np.save(os.path.join(work, f"{name}.npy"), values)
        with open(os.path.join(work, "spec.json"), "w") as f:
            json.dump({**spec, "candidates": args.candidates}, f)
        command = [sys.executable, os.path.abspath(__file__), "--shard_child", work]
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
            reader = threading.Thread(target=lambda: [on_line(json.loads(line)) for line in child.stdout], daemon=True)
            reader.start()
            try:
                child.wait(timeout=args.build_timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                print(f"| {spec['build']['change']}: not done within --build_timeout {args.build_timeout:.0f} s |")
            reader.join(timeout=10)
    finally:
        shutil.rmtree(work)


def resident_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def exact_top(vectors, queries, k) -> np.ndarray:
    """[Q, k] rows of the k nearest vectors of each query, best first (in chunks: 200 x 1M scores is 800 MB)."""
    tops = []
    for query in queries:
        scores = vectors @ query
        top = np.argpartition(-scores, k)[:k]
        tops.append(top[np.argsort(-scores[top])])
    return np.stack(tops)


def shard_child(work):
    """Child of shard_run: builds one shard, measures its searches; one JSON line per figure."""
    import gc

    from qdrant_edge import (
        BinaryQuantizationConfig,
        EdgeShard,
        Memory,
        Point,
        QuantizationSearchParams,
        Query,
        QueryRequest,
        SearchParams,
        UpdateOperation,
    )

    from captioning.search import edge_engine

    with open(os.path.join(work, "spec.json")) as f:
        spec = json.load(f)
    vectors = np.load(os.path.join(work, "vectors.npy"))
    queries = np.load(os.path.join(work, "queries.npy"))
    k = spec["candidates"]
    truth = exact_top(vectors, queries, 10)
    build = spec["build"]
    codes = {"int8": edge_engine.INT8_CODES, "binary": BinaryQuantizationConfig(memory=Memory.Pinned), None: None}[
        build.get("quantization")
    ]
    config = edge_engine.EdgeEngine._config(
        vectors.shape[1], m=build["m"], ef_construct=build["ef_construct"], quantization=codes
    )
    path = os.path.join(work, "shard")
    shard = EdgeShard.create(path, config)
    started = time.perf_counter()
    for start in range(0, len(vectors), 1024):
        shard.update(
            UpdateOperation.upsert_points(
                [
                    Point(id=n, vector=vectors[n].tolist(), payload={})
                    for n in range(start, min(start + 1024, len(vectors)))
                ]
            )
        )
    insert_s = time.perf_counter() - started

    def params(search):
        ef = max(256, len(vectors) // 400) if search.get("ef") == "adaptive" else search.get("ef")
        quantization = QuantizationSearchParams(
            ignore=search.get("ignore", False), rescore=search.get("rescore"), oversampling=search.get("oversampling")
        )
        return SearchParams(hnsw_ef=ef, quantization=quantization)

    def query(vector, search_params, limit=k):
        return [
            int(p.id)
            for p in shard.query(QueryRequest(query=Query.Nearest(vector.tolist()), limit=limit, params=search_params))
        ]

    unbuilt = [
        (time.perf_counter(), query(vector, params(spec["searches"][-1])), time.perf_counter())
        for vector in queries[:UNBUILT_QUERIES]
    ]
    started = time.perf_counter()
    shard.optimize()
    build_s = time.perf_counter() - started
    shard.flush()
    shard.close()
    del shard
    gc.collect()
    before = resident_mb()
    started = time.perf_counter()
    shard = EdgeShard.load(path)
    open_s = time.perf_counter() - started
    print(
        json.dumps(
            {
                "points": len(vectors),
                "insert_s": insert_s,
                "build_s": build_s,
                "open_s": open_s,
                "disk_per_vector": folder_bytes(path) / len(vectors),
                "unbuilt_p50": 1000 * np.median([end - begin for begin, _, end in unbuilt]),
                "unbuilt_recall10": recall_at_10([found for _, found, _ in unbuilt], truth),
            }
        ),
        flush=True,
    )
    for search in spec["searches"]:
        search_params = params(search)
        found, times, scan_times = [], [], []
        for vector in queries:
            started = time.perf_counter()
            scores = vectors @ vector
            top = np.argpartition(-scores, k)[:k]
            top[np.argsort(-scores[top])]
            scan_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            found.append(query(vector, search_params))
            times.append(time.perf_counter() - started)
        stage1, p99 = percentiles(warm(times))
        scan, _ = percentiles(warm(scan_times))
        print(
            json.dumps(
                {
                    "name": search_name(search, len(vectors)),
                    "stage1": stage1,
                    "p99": p99,
                    "scan": scan,
                    "ratio": stage1 / scan,
                    "recall10": recall_at_10(found, truth),
                    "build_s": build_s,
                    "rss_mb": resident_mb() - before,
                }
            ),
            flush=True,
        )
    if "whole" in spec:
        print(
            json.dumps(
                {
                    "whole": whole_query(
                        work, spec, vectors, queries, lambda v: query(v, params(spec["whole"]["search"]))
                    )
                }
            ),
            flush=True,
        )
    shard.close()


def whole_query(work, spec, vectors, queries, search) -> dict:
    """embed_text + stage 1 + stage 2 (score_features of the K candidates' features, read from files) per text,
    stage 1 searching the n-th query vector for the n-th text; and how many of the reranked top 10 match those
    reranked from the exact top K."""
    from captioning.search.search_model import open_local

    model = open_local(spec["whole"]["model_dir"])
    base = np.load(os.path.join(work, "base.npy"))
    features = np.load(os.path.join(work, "features.npy"))
    folder = os.path.join(work, "features")
    os.makedirs(folder)
    for row, values in enumerate(features):  # one file per real image, as the index's store keeps them
        np.save(os.path.join(folder, f"{row}.npy"), values)
    del features
    k = spec["candidates"]

    def stage2(rows, text):
        loaded = np.stack([np.load(os.path.join(folder, f"{base[row]}.npy")) for row in rows]).astype(np.float32)
        return model.score_features(loaded, text)["log_likelihood"]

    def reranked_top10(rows, text):
        return {rows[n] for n in np.argsort(-stage2(rows, text), kind="stable")[:10]}

    parts, agreement = [], []
    for n, text in enumerate(spec["whole"]["texts"]):
        started = time.perf_counter()
        model.embed_text(text)
        embedded = time.perf_counter()
        rows = search(queries[n])
        searched = time.perf_counter()
        scores = stage2(rows, text)
        done = time.perf_counter()
        parts.append((embedded - started, searched - embedded, done - searched, done - started))
        chosen = {rows[i] for i in np.argsort(-scores, kind="stable")[:10]}
        exact = exact_top(vectors, queries[n : n + 1], k)[0].tolist()
        agreement.append(len(chosen & reranked_top10(exact, text)) / 10)
    parts = np.array(warm(parts))
    p50, p99 = percentiles(parts[:, 3])
    return {
        "embed": 1000 * np.median(parts[:, 0]),
        "stage1": 1000 * np.median(parts[:, 1]),
        "stage2": 1000 * np.median(parts[:, 2]),
        "p50": p50,
        "p99": p99,
        "reranked_recall10": float(np.mean(agreement)),
    }


def warm(values) -> list:
    """The values after the first WARM_QUERIES (all of them in a run too short to spare those)."""
    return values[WARM_QUERIES:] if len(values) > 2 * WARM_QUERIES else values


def recall_at_10(found, truth) -> float:
    return float(np.mean([len(set(rows[:10]) & set(top.tolist())) / 10 for rows, top in zip(found, truth)]))


def search_name(search, points) -> str:
    ef = (
        f"ef {max(256, points // 400)} (one per 400 points)" if search.get("ef") == "adaptive" else f"ef {search['ef']}"
    )
    if search.get("ignore"):
        return f"{ef}, float vectors"
    if "rescore" not in search:
        return ef
    if not search["rescore"]:
        return f"{ef}, codes only"
    return f"{ef}, rescore x{search['oversampling']:g}"


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
    print(
        "| stored as | disk per image | stage 2 p50 ms (load + score) | same top 10 as float32 | rank correlation "
        "(min) | largest log-likelihood difference |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for dtype, itemsize in (("float32", 4), ("float16", 2)):
        p50, _ = percentiles(times[dtype])
        agreement = (
            ("(reference)", "", "")
            if dtype == "float32"
            else (f"{np.mean(same_top10):.3f}", f"{np.min(correlations):.5f}", f"{largest:.5f}")
        )
        print(f"| {dtype} | {size * itemsize / 1024:.0f} KB | {p50:.1f} | {' | '.join(agreement)} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", default=os.path.join("checkpoints", "export"))
    parser.add_argument("--parts", default="levers,index,features,million")
    parser.add_argument("--real_images", type=int, default=3000, help="Unseen scenes embedded by the model.")
    parser.add_argument("--vectors", type=int, default=100_000, help="Index size for the index part.")
    parser.add_argument("--million", type=int, default=1_000_000, help="Vectors for the million part.")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--local_queries", type=int, default=50, help="Stage-1 queries on the local mode (slow); 0 skips that index."
    )
    parser.add_argument("--feature_queries", type=int, default=50)
    parser.add_argument("--ef", default="64,128,256,512", help="HNSW search-time ef values to measure.")
    parser.add_argument("--lever_vectors", type=int, default=100_000, help="Vectors for the levers part.")
    parser.add_argument("--dim", type=int, default=128, help="Vector width for the levers part.")
    parser.add_argument(
        "--levers", default="", help="Only these levers, by their change (e.g. 'as before,int8 codes'); all when empty."
    )
    parser.add_argument("--candidates", type=int, default=16, help="Stage-1 K of the levers and million parts.")
    parser.add_argument(
        "--build_timeout",
        type=float,
        default=3600,
        help="Seconds for each shard built in a child process (levers, million).",
    )
    parser.add_argument("--work_dir", default=None, help="Where the temporary indexes go (default: the temp dir).")
    parser.add_argument("--shard_child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cli.quiet_start()  # TensorFlow loads later: its start-up lines stay off the table
    args.ef = [int(ef) for ef in args.ef.split(",")]
    if args.shard_child:
        shard_child(args.shard_child)
        return
    parts = args.parts.split(",")
    if "levers" in parts:
        run_levers(args)
    if not {"index", "features", "million"} & set(parts):
        return
    from captioning.search.search_model import open_local

    model = open_local(args.model_dir)
    if "index" in parts:
        run_index(model, args)
    if "features" in parts:
        run_features(model, args)
    if "million" in parts:
        run_million(model, args)


if __name__ == "__main__":
    main()
