"""Search on a real (tiny, trained) export: its embed_image/embed_text signatures, the index's cosine matching
the model's own contrastive score, and both stage-2 ways giving serving_default's numbers."""

from pathlib import Path

import numpy as np
import pytest

from captioning.search import sources
from captioning.search.index import ImageIndex
from captioning.search.indexing import Indexer
from captioning.search.retrieval import Searcher
from captioning.search.search_model import open_local


@pytest.fixture(scope="module")
def model(tiny_export_dir):
    return open_local(tiny_export_dir)


def test_two_stage_search_with_the_real_signatures(model, sample_images, tmp_path):
    paths, scenes = sample_images
    index = ImageIndex(str(tmp_path / "index"))
    try:
        result = Indexer(index, model).add(sources.expand(paths), progress=False)
        assert len(result.added) == 3 and not result.errors and Indexer(index, model).cache_features
        text = "a red circle"
        by_features = Searcher(index, model, stage2="features").search(text, k=3)
        by_images = Searcher(index, model, stage2="images").search(text, k=3)
    finally:
        index.close()
    assert [row["id"] for row in by_features] == [row["id"] for row in by_images]
    images = [Path(row["source"]).read_bytes() for row in by_images]
    expected = model.score_pairs(images, [text] * 3)
    for rows in (by_features, by_images):
        np.testing.assert_allclose(
            [row["log_likelihood"] for row in rows], expected["log_likelihood"], rtol=1e-4, atol=1e-4
        )
    # Stage 1's cosine over stored vectors is the model's own contrastive score.
    np.testing.assert_allclose([row["contrastive"] for row in by_images], expected["contrastive"], atol=1e-4)
    vectors = model.embed_images(images)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
