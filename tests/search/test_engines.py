"""What the index engines add beyond indexing and search: batched writes, the gallery order, HNSW on int8 codes
against exact search, older shards, the settings a server collection gets, converting an old local-mode folder,
and pushing a collection to a server."""

import inspect
import logging
import time
import warnings

import numpy as np
import pytest
from qdrant_edge import EdgeShard, QuantizationSearchParams, Query, QueryRequest, SearchParams

from captioning.data.synthetic import COLORS
from captioning.search import edge_engine, sources
from captioning.search.engine import (
    EF_STALE_SECONDS,
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    INT8_QUANTILE,
    MAX_SEARCH_EF,
    ORDER_FIELD,
    OVERSAMPLING,
    SEARCH_EF,
    Hit,
    IndexEngine,
    SearchEf,
    search_ef,
)
from captioning.search.index import ImageIndex
from captioning.search.indexing import Indexer
from captioning.search.push import push
from captioning.search.server_engine import ServerEngine
from tests.search.conftest import open_index


def test_each_engine_keeps_the_engine_protocol(index):
    engine = index.engine
    assert isinstance(engine, IndexEngine)
    for name in (name for name in dir(IndexEngine) if not name.startswith("_")):
        wanted = list(inspect.signature(getattr(IndexEngine, name)).parameters.values())[1:]  # without self
        given = inspect.signature(getattr(engine, name)).parameters.values()
        assert [(p.name, p.kind, p.default) for p in given] == [(p.name, p.kind, p.default) for p in wanted], name
    ids = ["00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"]
    vectors = np.eye(2, 4, dtype=np.float32)
    engine.upsert(7, ids, vectors, [{"n": 1, ORDER_FIELD: 1}, {"n": 2, ORDER_FIELD: 2}])
    assert engine.versions() == {7: 2} and engine.count(7) == 2 and engine.count(8) == 0
    assert engine.existing(7, ids + ["00000000-0000-0000-0000-000000000003"]) == set(ids)
    (hit,) = engine.search(7, vectors[1], 1)
    assert isinstance(hit, Hit) and hit.id == ids[1] and hit.score == pytest.approx(1.0)
    assert {key: payload["n"] for key, payload in engine.get(7, ids).items()} == {ids[0]: 1, ids[1]: 2}
    entries, next_offset = engine.scroll(7, limit=1, with_vectors=True)
    assert len(entries) == 1 and len(entries[0]) == 3 and next_offset == ids[1]
    assert [image_id for image_id, _ in engine.newest(7)] == [ids[1], ids[0]]
    assert isinstance(engine.optimize(7), bool) and engine.unindexed(7) >= 0
    engine.delete(7, ids[:1])
    assert engine.count(7) == 1 and engine.get(7, ids[:1]) == {}


def test_one_update_per_indexing_batch(index, search_model, colour_folder):
    calls = []
    write = index.engine.upsert
    index.engine.upsert = lambda version, ids, *rest: (calls.append(len(ids)), write(version, ids, *rest))
    Indexer(index, search_model, batch_size=3).add(sources.expand(colour_folder.values()), progress=False)
    assert calls == [3, 3, 2]


def test_the_gallery_pages_newest_first(index, search_model, colour_folder):
    indexer = Indexer(index, search_model)
    order = list(COLORS)
    for name in order:  # one at a time: each a later addition than the one before
        indexer.add(sources.expand([colour_folder[name]]), progress=False)
    seen, before = [], None
    while True:
        page, before = index.newest(1, before, limit=3)
        assert len(page) <= 3
        seen += [payload["source"] for _, payload in page]
        if before is None:
            break
    assert seen == [colour_folder[name] for name in reversed(order)]


def test_all_entries_carry_the_stored_vectors(index, search_model, colour_folder):
    Indexer(index, search_model).add(sources.expand([colour_folder["red"], colour_folder["blue"]]), progress=False)
    entries = list(index.all_entries(1, with_vectors=True, page_size=1))
    assert len(entries) == 2
    for image_id, _payload, vector in entries:
        (hit,) = index.search(1, vector, 1)
        assert hit.id == image_id and hit.score == pytest.approx(1.0, abs=1e-5)


def test_search_ef_grows_past_128_000_images_up_to_1024_and_is_at_least_the_limit():
    # scripts/benchmark_index.py: ef 128 on int8 codes kept recall@10 at 1.000 at 100,000 and 1,000,000 for queries
    # near stored images; caption queries at 1,000,000 needed ef 1,024 to find 0.985 of the exact top 16's images.
    for points in (0, 100_000, 128_999):
        assert search_ef(points, 16) == SEARCH_EF
    assert [search_ef(points, 16) for points in (500_000, 1_000_000, 5_000_000)] == [500, 1_000, MAX_SEARCH_EF]
    assert search_ef(1_000_000, 2_000) == 2_000  # the walk keeps at least the results asked for
    for limit in (1, 16, SEARCH_EF):
        assert edge_engine.search_params(limit, SEARCH_EF).hnsw_ef == SEARCH_EF
    assert edge_engine.search_params(SEARCH_EF + 1, SEARCH_EF).hnsw_ef == SEARCH_EF + 1
    quantization = edge_engine.search_params(16, SEARCH_EF).quantization
    assert quantization.rescore and quantization.oversampling == OVERSAMPLING


def test_the_collection_size_behind_ef_is_counted_once_then_after_each_write_or_a_minute(monkeypatch):
    counts = []  # each call's `exact`: a rough count is enough
    ef = SearchEf(lambda exact: counts.append(exact) or {1: 600_000, 2: 700_000})
    assert [ef(1, 16), ef(1, 16), ef(2, 16)] == [600, 600, 700] and counts == [False, False]
    ef.forget(1)
    ef(1, 16)
    assert len(counts) == 3
    later = time.monotonic() + EF_STALE_SECONDS + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert ef(3, 16) == SEARCH_EF and ef(2, 16) == 700
    assert counts == [False] * 5


def test_each_engine_searches_with_the_ef_of_its_collections_size(index, monkeypatch):
    from captioning.search import engine

    monkeypatch.setattr(engine, "IMAGES_PER_EF", 1)  # one per image: the ef shows the size the engine counted
    seen, real_params = [], edge_engine.search_params
    monkeypatch.setattr(edge_engine, "search_params", lambda limit, ef: seen.append(ef) or real_params(limit, ef))
    server_query = getattr(getattr(index.engine, "client", None), "query_points", None)
    if server_query:
        monkeypatch.setattr(
            index.engine.client,
            "query_points",
            lambda *args, **kwargs: seen.append(kwargs["search_params"].hnsw_ef) or server_query(*args, **kwargs),
        )
    vectors = clustered(200, 8, np.random.default_rng(0))
    add_numbered(index, vectors[:150])
    index.search(1, vectors[0], 16)
    add_numbered(index, vectors)  # a write (50 new points): the size is counted again
    index.search(1, vectors[0], 16)
    assert seen == [150, 200]


def clustered(count, dim, rng):
    centres = rng.normal(size=(40, dim))
    vectors = centres[rng.integers(0, 40, count)] + 0.3 * rng.normal(size=(count, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def add_numbered(index, vectors) -> None:
    ids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(len(vectors))]
    for start in range(0, len(ids), 500):
        index.upsert(1, ids[start : start + 500], vectors[start : start + 500], [{}] * len(ids[start : start + 500]))


def row_of(point_id) -> int:
    return int(str(point_id).rsplit("-", 1)[1])


def test_hnsw_on_int8_codes_finds_what_exact_search_finds_with_float_scores(tmp_path, monkeypatch):
    monkeypatch.setattr(edge_engine, "FULL_SCAN_VECTORS", 200)  # so that 2,000 vectors get a graph and codes
    rng = np.random.default_rng(0)
    vectors = clustered(2000, 32, rng)
    queries = vectors[rng.integers(0, 2000, 20)] + 0.1 * rng.normal(size=(20, 32))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index = ImageIndex(str(tmp_path / "index"))
    try:
        add_numbered(index, vectors)
        assert index.unindexed(1) == 2000
        assert index.optimize(1) and index.unindexed(1) == 0
        shard = index.engine._shard(1)
        recalls, rescored_error, codes_error = [], [], []
        for query in queries:
            exact = vectors @ query
            hits = index.search(1, query, 16)
            found = [row_of(hit.id) for hit in hits]
            recalls.append(len(set(found) & set(np.argsort(-exact)[:16].tolist())) / 16)
            rescored_error += [abs(hit.score - exact[n]) for hit, n in zip(hits, found)]
            codes_only = shard.query(
                QueryRequest(
                    query=Query.Nearest(query.tolist()),
                    limit=16,
                    params=SearchParams(hnsw_ef=SEARCH_EF, quantization=QuantizationSearchParams(rescore=False)),
                )
            )
            codes_error += [abs(point.score - exact[row_of(point.id)]) for point in codes_only]
        assert np.mean(recalls) >= 0.99
        # The graph walks int8 codes (their scores are off by ~1e-3); the results come back rescored in float.
        assert max(rescored_error) < 1e-5 < max(codes_error)
    finally:
        index.close()


def test_a_shard_made_before_int8_codes_still_opens_and_searches(tmp_path, monkeypatch):
    monkeypatch.setattr(edge_engine, "FULL_SCAN_VECTORS", 200)
    vectors = clustered(1000, 32, np.random.default_rng(1))
    folder = tmp_path / "index" / "edge"
    old = EdgeShard.create(str(folder / "images_v1"), edge_engine.EdgeEngine._config(32, quantization=None))
    old.close()
    index = ImageIndex(str(tmp_path / "index"))
    try:
        add_numbered(index, vectors)
        assert index.optimize(1)
        for row in (0, 500, 999):
            (hit,) = index.search(1, vectors[row], 1)
            assert row_of(hit.id) == row and hit.score == pytest.approx(1.0, abs=1e-5)
    finally:
        index.close()


def test_a_server_collection_gets_the_same_settings(tmp_path):
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    created, searched = [], []
    create, query = client.create_collection, client.query_points
    client.create_collection = lambda *args, **kwargs: (created.append(kwargs), create(*args, **kwargs))[1]
    client.query_points = lambda *args, **kwargs: (searched.append(kwargs), query(*args, **kwargs))[1]
    server = ServerEngine(client)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # local mode: payload indexes do nothing there
        server.upsert(1, ["00000000-0000-0000-0000-000000000001"], np.ones((1, 8), np.float32), [{}])
        server.search(1, np.ones(8, np.float32), 16)
        server.create_collection(2, 8, shard_number=6, replication_factor=2)
    (first, second), (search,) = created, searched
    assert (first["hnsw_config"].m, first["hnsw_config"].ef_construct) == (HNSW_M, HNSW_EF_CONSTRUCT)
    assert first["quantization_config"].scalar.type == models.ScalarType.INT8
    assert first["quantization_config"].scalar.quantile == INT8_QUANTILE
    assert (second["shard_number"], second["replication_factor"]) == (6, 2)
    params = search["search_params"]
    assert params.hnsw_ef == SEARCH_EF
    assert params.quantization.rescore and params.quantization.oversampling == OVERSAMPLING
    server.close()


def test_an_old_local_mode_folder_is_converted_without_re_embedding(tmp_path, search_model, colour_folder, caplog):
    from qdrant_client import QdrantClient

    from captioning.search.server_engine import ServerEngine

    index_dir = tmp_path / "index"
    old = ImageIndex(str(index_dir), engine=ServerEngine(QdrantClient(path=str(index_dir / "qdrant"))))
    Indexer(old, search_model).add(sources.expand(colour_folder.values()), progress=False)
    before = {image_id: (payload, vector) for image_id, payload, vector in old.all_entries(1, with_vectors=True)}
    old.close()
    assert (index_dir / "qdrant" / "meta.json").exists()  # what earlier versions wrote

    with caplog.at_level(logging.WARNING, logger="captioning.search.index"):
        index = ImageIndex(str(index_dir))
    try:
        (line,) = caplog.messages
        assert f"converted the old index in {index_dir / 'qdrant'}" in line
        assert f"{len(COLORS)} images of model version 1 copied without re-embedding" in line
        assert not (index_dir / "qdrant").exists()
        after = {image_id: (payload, vector) for image_id, payload, vector in index.all_entries(1, with_vectors=True)}
        assert set(after) == set(before)
        for image_id, (payload, vector) in before.items():
            assert after[image_id][0]["sha256"] == payload["sha256"]
            np.testing.assert_allclose(after[image_id][1], vector, atol=1e-6)
        red_digest = next(p["sha256"] for p, _ in after.values() if p["source"] == colour_folder["red"])
        (red,) = index.search(1, search_model.embed_images([index.store.image(red_digest)])[0], 1)
        assert red.payload["source"] == colour_folder["red"]
    finally:
        index.close()
    caplog.clear()
    ImageIndex(str(index_dir)).close()  # converted once: nothing to say the next time
    assert not caplog.messages


class _FailingAfter:
    """A destination that breaks after `pages` pages, as a dropped connection would."""

    def __init__(self, engine, pages):
        self.engine, self.pages = engine, pages

    def existing(self, *args):
        return self.engine.existing(*args)

    def upsert(self, *args):
        if self.pages == 0:
            raise ConnectionError("connection reset")
        self.pages -= 1
        self.engine.upsert(*args)


def test_push_copies_a_collection_in_batches_and_resumes(tmp_path, search_model, colour_folder):
    from qdrant_client import QdrantClient

    from captioning.search.server_engine import ServerEngine

    index = open_index(str(tmp_path / "index"), "edge")
    server = ServerEngine(QdrantClient(path=str(tmp_path / "server")))  # standing in for a Qdrant server
    try:
        Indexer(index, search_model).add(sources.expand(colour_folder.values()), progress=False)
        with pytest.raises(ConnectionError):
            push(index, _FailingAfter(server, pages=1), 1, page_size=3, progress=False)
        assert server.count(1) == 3
        result = push(index, server, 1, page_size=3, progress=False)
        assert (result.copied, result.already_there) == (len(COLORS) - 3, 3)
        assert server.get(1, list(dict(index.all_entries(1)))) == dict(index.all_entries(1))
        query = search_model.embed_text("red")
        assert [h.id for h in server.search(1, query, 3)] == [h.id for h in index.search(1, query, 3)]
    finally:
        index.close()
        server.close()


def test_a_search_never_counts_exactly(index, monkeypatch):
    """An exact count reads every segment (80 ms at a million points): the version check before every search and
    the size behind its ef take the segments' totals."""
    exact_counts = []
    versions = index.engine.versions
    monkeypatch.setattr(index.engine, "versions", lambda exact=True: exact_counts.append(exact) or versions(exact))
    add_numbered(index, clustered(50, 8, np.random.default_rng(1)))
    index.check_version(1)
    index.search(1, np.ones(8, np.float32), 5)
    assert exact_counts and not any(exact_counts)
