"""Captions through the exported generate_caption signature: a generated caption's log-likelihood is exactly the
score of its text, the search is one graph call, and greedy decoding matches the library's."""

import numpy as np
import pytest

from captioning.data import synthetic
from captioning.inference.captions import generate_with_signature
from captioning.inference.local import SavedModelScorer
from captioning.inference.rows import run_in_batches
from captioning.inference.runners import open_model
from captioning.model import generation


@pytest.fixture(scope="module")
def exported(tiny_export_dir):
    return open_model(tiny_export_dir)


@pytest.fixture(scope="module")
def images(sample_images):
    _, scenes = sample_images
    return [synthetic.render_scene_png(scene, 32) for scene in scenes]


def test_generated_log_likelihood_equals_scoring_the_generated_text(exported, images):
    generated = generate_with_signature(exported, images, beam_size=3, length_penalty=0.5)
    captions = [caption for per_image in generated["caption"] for caption in per_image]
    scored = run_in_batches(
        exported, "serving_default", {"image_bytes": [image for image in images for _ in range(3)], "text": captions}
    )
    np.testing.assert_allclose(scored["log_likelihood"], generated["log_likelihood"].ravel(), atol=1e-4)
    np.testing.assert_array_equal(scored["num_tokens"], generated["num_tokens"].ravel())


def test_generate_caption_signature_decodes_in_one_graph_call(tiny_export_dir):
    graph = SavedModelScorer(tiny_export_dir).model.signatures["generate_caption"].graph.as_graph_def()
    ops = {node.op for node in graph.node} | {node.op for f in graph.library.function for node in f.node_def}
    assert ops & {"While", "StatelessWhile"}, "the decoding loop must be a graph while loop"


def test_greedy_through_the_signature_matches_the_library(exported, tiny_model, sample_features, images):
    model, _ = tiny_model
    served = generate_with_signature(exported, images, beam_size=1)
    np.testing.assert_allclose(
        served["log_likelihood"][:, 0],
        generation.greedy_search(model, sample_features)["log_likelihood"].numpy(),
        atol=1e-4,
    )
