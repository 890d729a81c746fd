"""Index an image collection and search it by text.

    python -m captioning.search add --index_dir D --model_dir M PATH...        # files, folders, CSVs, URLs
    python -m captioning.search search --index_dir D --model_dir M --k 5 --json "a red star left of a blue cross"
    python -m captioning.search list|count|delete ID...|reindex --index_dir D --model_dir M
    python -m captioning.search push --index_dir D --qdrant_url URL [--model_version N]  # to a Qdrant server

Bad input: one line on stderr and exit code 2. `add` lists the images it skipped and exits 1 if there were any.
"""

import argparse
import json
import os
import sys

from captioning.search import retrieval
from captioning.search.edge_engine import BUILD_SECONDS_PER_VECTOR, FULL_SCAN_VECTORS
from captioning.search.fetch import FetchOptions
from captioning.search.indexing import BATCH_SIZE, Indexer
from captioning.search.opening import open_index
from captioning.search.push import PAGE_SIZE, push
from captioning.search.search_model import open_local
from captioning.search.server_engine import ServerEngine
from captioning.search.sources import expand
from captioning.util import cli
from captioning.util.memory import peak_memory_mb


def _program_name() -> str:
    """How the user started this: `python -m captioning.search`, or the installed `captioning-search`."""
    started = os.path.basename(sys.argv[0])
    return "python -m captioning.search" if started in ("__main__.py", "-c", "") else started


def _parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index_dir", required=True, help="Folder of the index (embedded Qdrant, images, features).")
    common.add_argument(
        "--model_dir",
        default=os.path.join("checkpoints", "export"),
        help="Export base directory (newest version) or a version directory.",
    )
    common.add_argument("--qdrant_url", default=None, help="Use this Qdrant server or cluster instead of the folder.")
    common.add_argument("--json", action="store_true", help="Print JSON.")
    parser = cli.ArgumentParser(prog=_program_name(), description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", parents=[common], help="Add images: files, folders, CSVs of paths/URLs, URLs.")
    add.add_argument("paths", nargs="+", metavar="PATH")
    add.add_argument("--batch_size", type=cli.at_least_one, default=BATCH_SIZE, help="Images per model call.")
    add.add_argument(
        "--allow_private_urls", action="store_true", help="Allow URLs on loopback, private and link-local addresses."
    )
    search = commands.add_parser("search", parents=[common], help="Search the index by text.")
    search.add_argument("query")
    search.add_argument("--k", type=cli.at_least_one, default=10, help="Results to return.")
    search.add_argument(
        "--candidates",
        type=cli.at_least_one,
        default=retrieval.DEFAULT_CANDIDATES,
        help="Stage-1 nearest neighbours reranked by caption log-likelihood (K).",
    )
    search.add_argument("--rank_by", choices=retrieval.RANK_BY, default="log_likelihood")
    search.add_argument(
        "--stage2",
        choices=retrieval.STAGE2_WAYS,
        default="auto",
        help="Rerank from cached features, re-encoded images, or the faster of the two.",
    )
    commands.add_parser("list", parents=[common], help="List the indexed images.")
    commands.add_parser("count", parents=[common], help="Count the indexed images.")
    delete = commands.add_parser("delete", parents=[common], help="Delete images by id.")
    delete.add_argument("ids", nargs="+", metavar="ID")
    commands.add_parser(
        "reindex", parents=[common], help="Embed the images of the index's previous model version with this model."
    )
    copy = commands.add_parser("push", help="Copy a model version's collection to a Qdrant server (resumable).")
    copy.add_argument("--index_dir", required=True, help="The embedded index to copy from.")
    copy.add_argument("--qdrant_url", required=True, help="The Qdrant server or cluster to copy to.")
    copy.add_argument("--model_version", type=int, help="Which version's collection (default: the newest).")
    copy.add_argument("--batch_size", type=int, default=PAGE_SIZE, help="Points per request to the server.")
    return parser


def _build_hnsw(index, version) -> None:
    """Builds the HNSW graph after a large addition (it blocks this process, so the CLI does it, not the server)."""
    unindexed = index.unindexed(version)
    if unindexed >= FULL_SCAN_VECTORS:
        print(
            f"building the HNSW index over {unindexed} new images (about "
            f"{unindexed * BUILD_SECONDS_PER_VECTOR:.0f} s)...",
            file=sys.stderr,
        )
        index.optimize(version)


def _push(args, index):
    versions = {v: n for v, n in index.versions().items() if n}
    version = args.model_version if args.model_version is not None else max(versions, default=None)
    if version not in versions:
        return cli.fail(
            f"{args.index_dir} holds no images of model version {version}"
            if version is not None
            else f"{args.index_dir} holds no images to push"
        )
    destination = ServerEngine.connect(args.qdrant_url)
    try:
        destination.count(version)  # reachable? (before the progress bar starts)
        result = push(index, destination, version, page_size=args.batch_size)
    finally:
        destination.close()
    print(result.summary(version, args.qdrant_url))
    return 0


def _run(args, index):
    if args.command == "push":
        return _push(args, index)
    model = open_local(args.model_dir)
    if args.command in ("add", "search", "reindex"):
        model.require_contrastive_head()
    version = model.version
    if args.command == "add":
        items = expand(args.paths, FetchOptions(allow_private=args.allow_private_urls))
        result = Indexer(index, model, batch_size=args.batch_size).add(items)
        _build_hnsw(index, version)
        for source, message in result.errors:
            print(f"skipped {source}: {message}", file=sys.stderr)
        summary = f"{result.summary()}, peak memory {peak_memory_mb():.0f} MB"
        print(
            json.dumps(
                {
                    "added": result.added,
                    "duplicates": result.duplicates,
                    "errors": result.errors,
                    "images_per_second": result.images_per_second,
                }
            )
            if args.json
            else summary
        )
        return 1 if result.errors else 0
    if args.command == "search":
        results = retrieval.Searcher(index, model, stage2=args.stage2).search(
            args.query, k=args.k, candidates=args.candidates, rank_by=args.rank_by
        )
        if args.json:
            print(json.dumps(results, indent=1))
        for n, row in enumerate(results if not args.json else []):
            print(f"{n + 1:3d}. {row['log_likelihood']:9.3f} {row['contrastive']:7.3f}  {row['source']}  {row['id']}")
        return 0
    if args.command == "reindex":
        old = {v: n for v, n in index.versions().items() if v != version and n}
        if not old:
            return cli.fail(f"nothing to re-index: the index holds no images of another model version than {version}")
        result = Indexer(index, model).reindex(max(old))
        _build_hnsw(index, version)
        print(result.summary())
        return 1 if result.errors else 0
    if args.command == "delete":
        removed = index.delete(version, args.ids)
        print(json.dumps(removed) if args.json else f"deleted {len(removed)} of {len(args.ids)} images")
        return 0 if len(removed) == len(args.ids) else 1
    index.check_version(version)
    if args.command == "count":
        print(json.dumps({"count": index.count(version)}) if args.json else index.count(version))
        return 0
    entries = list(index.all_entries(version))  # list
    if args.json:
        print(json.dumps([{"id": image_id, **payload} for image_id, payload in entries], indent=1))
    for image_id, payload in entries if not args.json else []:
        print(f"{image_id}  {payload['source']}")
    return 0


def _main(args) -> int:
    if os.path.exists(args.index_dir) and not os.path.isdir(args.index_dir):
        return cli.fail(f"--index_dir {args.index_dir} is a file: give a folder (created if missing)")
    # push reads the embedded index and writes to --qdrant_url
    index = open_index(args.index_dir, None if args.command == "push" else args.qdrant_url)
    try:
        return _run(args, index)
    except FileNotFoundError as error:  # a --model_dir without a model
        return cli.fail(error)
    except Exception as error:
        from qdrant_client.http.exceptions import ApiException  # heavy: only on the way out

        if isinstance(error, ApiException):  # unreachable, refused, or an error status from the server
            return cli.fail(f"Qdrant server {args.qdrant_url}: {error}")
        raise  # an error of the tree is told by cli.run_parsed in one line; anything else is a bug
    finally:
        index.close()


def main(argv=None) -> int:
    return cli.run_parsed(_main, _parser(), argv)


def run() -> None:
    """The `captioning-search` command (also `python -m captioning.search`)."""
    sys.exit(cli.quiet_on_closed_pipe(main)())


if __name__ == "__main__":
    run()
