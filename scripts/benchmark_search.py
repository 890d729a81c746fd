"""Benchmark of search: retrieval quality of the two stages, query latency, indexing speed and memory.

    python scripts/benchmark_search.py --model_dir checkpoints/export
    python scripts/benchmark_search.py --model_dir checkpoints/export --parts latency --latency_sizes 10000,100000

Recall (needs a model with the contrastive head): --recall_images unseen synthetic scenes (a seed no training run
uses), each queried by its full caption against all of them. Text->image Recall@1/5/10 for stage 1 alone
(contrastive), two-stage with each K in --candidates (top K by contrastive, reranked by caption log-likelihood),
and exhaustive log-likelihood over every image; compute per query counts caption-decoder passes (image-text
pairs scored), what dominates a query's cost. Ties count against the right image.

Latency: for each size in --latency_sizes, a fresh embedded index (Qdrant Edge) of that many synthetic images is
built with the indexer (images/s, peak memory of that process), then --latency_queries captions are searched
(k=10, K=--latency_candidates, default 64) after a warm-up, and stage 1 alone and the whole two-stage query
are timed (p50/p99).
Each size runs in its own process, so its peak memory is its own.

The index engine itself at 100,000 and 1,000,000 images (stage 1 exact and HNSW, recall, storage, the earlier
local-mode index for comparison): scripts/benchmark_index.py.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from captioning.data import scene_captions, synthetic
from captioning.util import cli
from captioning.util.memory import peak_memory_mb

RECALL_SEED = 7_000_001  # training uses --seed (0) and --seed + 1 for validation
LATENCY_SEED = 7_000_002


def scenes_and_images(count, seed, image_size=64):
    scenes = synthetic.generate_scenes(count, seed=seed)
    return scenes, [synthetic.render_scene_png(scene, image_size) for scene in scenes]


def ranks_of_truth(scores, truth):
    """0-based rank of each query's right image (column truth[q] of row q) with ties counted against it."""
    right = scores[np.arange(len(truth)), truth]
    return (scores >= right[:, None]).sum(axis=1) - 1


def recall(ranks, at=(1, 5, 10)):
    return {k: float(np.mean(ranks < k)) for k in at}


def two_stage_ranks(contrastive, log_likelihood, truth, candidates):
    """Rank of the right image after reranking each query's top-K contrastive images by log-likelihood; a right
    image outside the K gets rank K (a miss at every cut-off <= K)."""
    top = np.argsort(-contrastive, axis=1, kind="stable")[:, :candidates]
    ranks = []
    for q, chosen in enumerate(top):
        if truth[q] not in chosen:
            ranks.append(candidates)
            continue
        scores = log_likelihood[q, chosen]
        ranks.append(int((scores >= log_likelihood[q, truth[q]]).sum()) - 1)
    return np.array(ranks)


def run_recall(model, args):
    scenes, images = scenes_and_images(args.recall_images, RECALL_SEED)
    queries = list(range(min(args.num_queries, len(scenes))))
    texts = [scene_captions.full_caption(scenes[q]) for q in queries]
    truth = np.array(queries)
    started = time.perf_counter()
    image_vectors = model.embed_images(images)
    text_vectors = np.stack([model.embed_text(text) for text in texts])
    embed_seconds = time.perf_counter() - started
    contrastive = text_vectors @ image_vectors.T  # what the index's cosine search returns for unit vectors
    started = time.perf_counter()
    log_likelihood = model.score_matrix(images, texts)["log_likelihood"].T  # [queries, images]
    exhaustive_seconds = time.perf_counter() - started
    rows = [("stage 1 only (contrastive)", recall(ranks_of_truth(contrastive, truth)), 0)]
    for k in args.candidates:
        rows.append((f"two-stage, K={k}", recall(two_stage_ranks(contrastive, log_likelihood, truth, k)), k))
    rows.append(
        (f"exhaustive log-likelihood ({len(images)})", recall(ranks_of_truth(log_likelihood, truth)), len(images))
    )
    print(
        f"\nText->image recall: {len(texts)} queries (full captions) over {len(images)} unseen synthetic images "
        f"(seed {RECALL_SEED}), model {model.path}\n"
    )
    print("| method | R@1 | R@5 | R@10 | pairs scored per query | vs exhaustive |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values, pairs in rows:
        ratio = f"{len(images) / pairs:.0f}x less" if pairs else "no decoder pass"
        print(f"| {name} | {values[1]:.3f} | {values[5]:.3f} | {values[10]:.3f} | {pairs} | {ratio} |")
    pair_ms = exhaustive_seconds / (len(images) * len(texts)) * 1000
    print(
        f"\nEmbedding {len(images)} images + {len(texts)} texts: {embed_seconds:.1f} s. Exhaustive scoring: "
        f"{exhaustive_seconds:.1f} s = {pair_ms:.3f} ms per pair (images encoded once), "
        f"{pair_ms * len(images):.0f} ms per query."
    )


def run_latency_one(model, index_dir, size, args):
    """Builds an index of `size` images and times queries; returns a dict of figures (run in its own process)."""
    from captioning.search.index import ImageIndex
    from captioning.search.indexing import Indexer
    from captioning.search.retrieval import Searcher

    index = ImageIndex(index_dir)
    indexer = Indexer(index, model, batch_size=256)
    indexed, seconds, chunk = 0, 0.0, 5000
    for start in range(0, size, chunk):  # rendered chunk by chunk: the images need not all be in memory
        scenes = synthetic.generate_scenes(min(chunk, size - start), seed=LATENCY_SEED + start)
        items = [
            (f"synthetic:{start + n}", lambda scene=scene: synthetic.render_scene_png(scene, 64))
            for n, scene in enumerate(scenes)
        ]
        result = indexer.add(items, progress=False)
        indexed += len(result.added)
        seconds += result.seconds
    queries = [scene_captions.full_caption(s) for s in synthetic.generate_scenes(args.latency_queries + 10, seed=11)]
    searcher = Searcher(index, model)
    for text in queries[:10]:  # warm-up, and the stage-2 measurement of "auto"
        searcher.search(text, k=10, candidates=args.latency_candidates)
    stage1, total = [], []
    for text in queries[10:]:
        started = time.perf_counter()
        vector = model.embed_text(text)
        index.search(model.version, vector, args.latency_candidates)
        stage1.append(time.perf_counter() - started)
        started = time.perf_counter()
        searcher.search(text, k=10, candidates=args.latency_candidates)
        total.append(time.perf_counter() - started)
    index.close()
    started = time.perf_counter()
    ImageIndex(index_dir).close()
    reopen = time.perf_counter() - started
    return {
        "size": size,
        "indexed": indexed,
        "images_per_second": indexed / seconds,
        "stage1_p50_ms": 1000 * np.percentile(stage1, 50),
        "stage1_p99_ms": 1000 * np.percentile(stage1, 99),
        "p50_ms": 1000 * np.percentile(total, 50),
        "p99_ms": 1000 * np.percentile(total, 99),
        "stage2": searcher.stage2_choice(),
        "reopen_seconds": reopen,
        "peak_memory_mb": peak_memory_mb(),
    }


def run_latency(args):
    figures = []
    for size in args.latency_sizes:
        with tempfile.TemporaryDirectory() as scratch:
            out = subprocess.run(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--model_dir",
                    args.model_dir,
                    "--one_latency_size",
                    str(size),
                    "--index_dir",
                    os.path.join(scratch, "index"),
                    "--latency_queries",
                    str(args.latency_queries),
                    "--latency_candidates",
                    str(args.latency_candidates),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            figures.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        f"\nQuery latency (k=10, K={args.latency_candidates}, {args.latency_queries} queries) and indexing, "
        f"embedded index, model {args.model_dir}\n"
    )
    print(
        "| images | indexing images/s | peak memory MB | stage 1 p50 / p99 ms | query p50 / p99 ms | stage 2 | "
        "open index s |"
    )
    print("|---:|---:|---:|---:|---:|---|---:|")
    for f in figures:
        seconds = ", ".join(f"{name} {value * 1000:.1f} ms" for name, value in f["stage2"]["seconds"].items())
        print(
            f"| {f['indexed']} | {f['images_per_second']:.0f} | {f['peak_memory_mb']:.0f} | "
            f"{f['stage1_p50_ms']:.1f} / {f['stage1_p99_ms']:.1f} | {f['p50_ms']:.1f} / {f['p99_ms']:.1f} | "
            f"{f['stage2']['stage2']} ({seconds}) | {f['reopen_seconds']:.1f} |"
        )


def _whole_numbers(text: str) -> list:
    """ "16,64" -> [16, 64], each at least 1."""
    return [cli.at_least_one(part) for part in text.split(",")]


def main():
    cli.quiet_start()  # nothing has imported TensorFlow yet
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", default=os.path.join("checkpoints", "export"))
    parser.add_argument("--parts", default="recall,latency")
    parser.add_argument("--recall_images", type=cli.at_least_one, default=1000)
    parser.add_argument("--num_queries", type=cli.at_least_one, default=1000)
    parser.add_argument("--candidates", type=_whole_numbers, default="16,64")
    parser.add_argument("--latency_sizes", type=_whole_numbers, default="10000,100000")
    parser.add_argument("--latency_queries", type=cli.at_least_one, default=200)
    parser.add_argument("--latency_candidates", type=cli.at_least_one, default=64, help="K of the timed queries.")
    parser.add_argument("--one_latency_size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--index_dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from captioning.search.search_model import open_local

    try:
        model = open_local(args.model_dir)
    except (OSError, ValueError) as error:
        sys.exit(cli.fail(error))
    if args.one_latency_size:
        print(json.dumps(run_latency_one(model, args.index_dir, args.one_latency_size, args)))
        return
    parts = args.parts.split(",")
    if "recall" in parts:
        run_recall(model, args)
    if "latency" in parts:
        run_latency(args)


if __name__ == "__main__":
    main()
