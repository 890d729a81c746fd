"""Indexing from folders, CSVs and bytes; duplicates, delete, count; two-stage search; model-version changes."""

import numpy as np
import pytest

from captioning.data.synthetic import COLORS
from captioning.inference.runners import LocalModel
from captioning.search import sources
from captioning.search.images import ImageError
from captioning.search.index import ImageIndex, IndexBusyError, ModelVersionError
from captioning.search.indexing import Indexer
from captioning.search.retrieval import QueryError, Searcher
from captioning.search.search_model import SearchModel
from tests.search.conftest import colour_png


def test_a_folder_is_indexed_recursively_and_each_image_once(index, search_model, colour_folder, tmp_path):
    indexer = Indexer(index, search_model, batch_size=3)
    (tmp_path / "images" / "copy_of_red.png").write_bytes(colour_png("red"))
    (tmp_path / "images" / "broken.png").write_bytes(b"not an image")
    result = indexer.add(sources.expand([str(tmp_path / "images")]), progress=False)
    assert len(result.added) == len(COLORS)  # the copy is the same content: one entry
    assert len(result.duplicates) == 1
    assert [
        (source.endswith("broken.png"), "not a readable image" in message) for source, message in result.errors
    ] == [(True, True)]
    assert index.count(1) == len(COLORS)
    again = indexer.add(sources.expand([colour_folder["red"]]), progress=False)
    assert again.added == [] and len(again.duplicates) == 1
    payload = index.get(1, again.duplicates)[again.duplicates[0]]
    assert payload["model_version"] == 1 and payload["width"] == 16 and len(payload["sha256"]) == 64
    assert index.store.image(payload["sha256"]) == colour_png("red")


def test_csv_of_paths_and_missing_paths(index, search_model, colour_folder, tmp_path):
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("image_path,caption\nimages/nested/red.png,a red thing\nimages/blue.png,a blue thing\n")
    items = sources.expand([str(csv_path)])
    assert [source for source, _ in items] == [colour_folder["red"], colour_folder["blue"]]
    with pytest.raises(sources.SourceError, match="nope.png: no such file, folder or URL"):
        sources.expand([str(tmp_path / "nope.png")])


def test_delete_list_and_count(index, search_model, colour_folder):
    result = Indexer(index, search_model).add(sources.expand(colour_folder.values()), progress=False)
    red = next(i for i, p in index.get(1, result.added).items() if p["source"] == colour_folder["red"])
    assert index.delete(1, [red, "00000000-0000-0000-0000-000000000000", "not-an-id"]) == [red]
    assert index.get(1, ["not-an-id"]) == {} and index.existing(1, ["not-an-id"]) == set()
    assert index.count(1) == len(COLORS) - 1
    listed = dict(index.all_entries(1))
    assert red not in listed and len(listed) == len(COLORS) - 1
    with pytest.raises(FileNotFoundError):  # its stored image went with it
        index.store.image(sha_of(colour_png("red")))


def test_an_images_stored_embedding_and_thumbnail(index, search_model, colour_folder):
    result = Indexer(index, search_model).add(sources.expand(colour_folder.values()), progress=False)
    red = next(i for i, p in index.get(1, result.added).items() if p["source"] == colour_folder["red"])
    np.testing.assert_allclose(index.vector(1, red), search_model.embed_images([colour_png("red")])[0], atol=1e-5)
    assert index.vector(1, "00000000-0000-0000-0000-000000000000") is None and index.vector(1, "nope") is None
    assert index.vector(2, red) is None  # another version's collection does not hold it
    digest = sha_of(colour_png("red"))
    assert index.store.thumbnail(digest, 8)[:4] == b"RIFF"  # a WebP, kept with the index until the image goes
    index.delete(1, [red])
    with pytest.raises(FileNotFoundError):
        index.store.thumbnail(digest, 8)


def sha_of(data):
    from captioning.search.store import content_hash

    return content_hash(data)


@pytest.fixture
def filled(index, search_model, colour_folder):
    Indexer(index, search_model).add(sources.expand(colour_folder.values()), progress=False)
    return index


def test_stage_one_finds_the_colour_and_stage_two_reranks_by_log_likelihood(filled, search_model, colour_folder):
    searcher = Searcher(filled, search_model)
    (best,) = searcher.search("a red star left of a blue cross", k=1, candidates=1)
    assert best["source"] in (colour_folder["red"], colour_folder["blue"])
    results = searcher.search("a red star", k=3, candidates=len(COLORS))
    assert [row["log_likelihood"] for row in results] == sorted(
        (row["log_likelihood"] for row in results), reverse=True
    )
    # Stage 2's numbers are the model's own score_matrix values for those images (to the float16 rounding of the
    # cached features that scored them).
    expected = search_model.score_images(
        [filled.store.image(row["payload"]["sha256"]) for row in results], "a red star"
    )
    np.testing.assert_allclose([row["log_likelihood"] for row in results], expected["log_likelihood"], atol=1e-3)
    (red,) = searcher.search("red", k=1, candidates=1)
    assert red["source"] == colour_folder["red"] and red["contrastive"] > 0.9
    assert set(red) >= {"id", "source", "contrastive", "log_likelihood", "payload"}


def test_both_stage_two_ways_agree_and_auto_measures_them(filled, search_model):
    by_features = Searcher(filled, search_model, stage2="features").search("a green circle", k=8)
    by_images = Searcher(filled, search_model, stage2="images").search("a green circle", k=8)
    assert [row["id"] for row in by_features] == [row["id"] for row in by_images]
    # Cached features are float16 (half the disk): scores agree with re-encoding to ~1e-4 here.
    np.testing.assert_allclose(
        [r["log_likelihood"] for r in by_features], [r["log_likelihood"] for r in by_images], atol=1e-3
    )
    (digest,) = {row["payload"]["sha256"] for row in by_features[:1]}
    assert filled.store.features(1, [digest]).dtype == np.float32
    auto = Searcher(filled, search_model)
    for _ in range(3):
        auto.search("a green circle", k=2)
    choice = auto.stage2_choice()
    assert choice["stage2"] in ("features", "images") and set(choice["seconds"]) == {"features", "images"}


def test_bad_queries(filled, search_model):
    searcher = Searcher(filled, search_model)
    for text, k, message in ((" ", 1, "no words"), ("red", 0, "at least 1")):
        with pytest.raises(QueryError, match=message):
            searcher.search(text, k=k)


def test_a_new_model_version_says_so_and_reindexing_fixes_it(filled, search_export):
    newer = SearchModel(LocalModel(search_export), version=2)
    with pytest.raises(
        ModelVersionError, match="images embedded by model version 1, but the model is version 2.*reindex"
    ):
        Searcher(filled, newer).search("red")
    with pytest.raises(ModelVersionError):
        Indexer(filled, newer).add_bytes("upload", colour_png("red"))
    result = Indexer(filled, newer).reindex(1, progress=False)
    assert len(result.added) == len(COLORS) and not result.errors
    assert Searcher(filled, newer).search("red", k=1)[0]["payload"]["model_version"] == 2


def test_add_bytes_rejects_what_is_not_an_image(index, search_model):
    image_id, new = Indexer(index, search_model).add_bytes("upload:red.png", colour_png("red"))
    assert new and Indexer(index, search_model).add_bytes("upload:again.png", colour_png("red")) == (image_id, False)
    with pytest.raises(ImageError):
        Indexer(index, search_model).add_bytes("upload:x", b"GIF89a broken")


def test_a_second_process_gets_a_clear_message(tmp_path):
    index = ImageIndex(str(tmp_path / "index"))  # the embedded engine: one process per folder
    try:
        with pytest.raises(IndexBusyError, match="open in another process"):
            ImageIndex(index.index_dir)
    finally:
        index.close()
    ImageIndex(index.index_dir).close()  # free again once closed


def test_copies_within_one_batch_count_as_already_in(index, search_model, tmp_path):
    folder = tmp_path / "copies"
    folder.mkdir()
    for name, colour in (("a.png", "red"), ("b.png", "red"), ("c.png", "blue")):
        (folder / name).write_bytes(colour_png(colour))
    result = Indexer(index, search_model).add(sources.expand([str(folder)]), progress=False)
    assert len(result.added) == 2 and len(result.duplicates) == 1
    assert result.summary().startswith("indexed 2 new images (1 already in, 0 with errors)")
