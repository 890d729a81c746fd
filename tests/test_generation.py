"""Greedy and beam search: width 1 is greedy, hypotheses come best first, and a generated caption's
log-likelihood is exactly the score of its text."""

import numpy as np
import pytest
import tensorflow as tf

from captioning import generation
from captioning.data import synthetic
from captioning.signatures import open_model
from captioning.text import END_ID, PAD_ID


@pytest.fixture(scope="module")
def features(tiny_model, sample_images):
    model, _ = tiny_model
    _, scenes = sample_images
    size = model.config.image_size
    images = tf.stack([tf.io.decode_png(synthetic.render_scene_png(scene, size)) for scene in scenes])
    return model.encode_images(tf.cast(images, tf.float32))


@pytest.fixture(scope="module")
def exported(tiny_export_dir):
    return open_model(tiny_export_dir)


@pytest.fixture(scope="module")
def images(sample_images):
    _, scenes = sample_images
    return [synthetic.render_scene_png(scene, 32) for scene in scenes]


def test_beam_search_of_width_one_is_greedy_search(tiny_model, features):
    model, _ = tiny_model
    greedy = generation.greedy_search(model, features)
    beam = generation.beam_search(model, features, beam_size=1)
    np.testing.assert_array_equal(beam["tokens"][:, 0].numpy(), greedy["tokens"].numpy())
    np.testing.assert_allclose(beam["log_likelihood"][:, 0].numpy(), greedy["log_likelihood"].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(beam["num_tokens"][:, 0].numpy(), greedy["num_tokens"].numpy())


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_hypotheses_come_best_first_and_are_distinct(tiny_model, features, length_penalty):
    model, _ = tiny_model
    beam = generation.beam_search(model, features, beam_size=4, length_penalty=length_penalty)
    ranking = generation.ranking_scores(beam["log_likelihood"], beam["num_tokens"], length_penalty).numpy()
    assert np.all(np.diff(ranking, axis=1) <= 1e-6), ranking
    for hypotheses in beam["tokens"].numpy():
        assert len({tuple(tokens) for tokens in hypotheses}) == len(hypotheses)


def test_the_best_beam_is_at_least_as_likely_as_greedy(tiny_model, features):
    model, _ = tiny_model
    greedy = generation.greedy_search(model, features)
    beam = generation.beam_search(model, features, beam_size=4)
    assert np.all(beam["log_likelihood"][:, 0].numpy() >= greedy["log_likelihood"].numpy() - 1e-5)


def test_captions_end_once_and_respect_max_length(tiny_model, features):
    model, _ = tiny_model
    beam = generation.beam_search(model, features, beam_size=3, max_length=3)
    tokens, num_tokens = beam["tokens"].numpy(), beam["num_tokens"].numpy()
    assert np.all(num_tokens <= 4)  # three words and [end]
    for hypothesis, count in zip(tokens.reshape(-1, tokens.shape[-1]), num_tokens.ravel()):
        assert list(hypothesis[:count]).count(END_ID) == 1 and hypothesis[count - 1] == END_ID
        assert np.all(hypothesis[count:] == PAD_ID)


def test_generated_log_likelihood_equals_scoring_the_generated_text(exported, images):
    generated = generation.generate_with_signature(exported, images, beam_size=3, length_penalty=0.5)
    captions = [caption for per_image in generated["caption"] for caption in per_image]
    scored = exported.scorer.score([image for image in images for _ in range(3)], captions)
    np.testing.assert_allclose(scored["log_likelihood"], generated["log_likelihood"].ravel(), atol=1e-4)
    np.testing.assert_array_equal(scored["num_tokens"], generated["num_tokens"].ravel())


def test_generate_caption_signature_decodes_in_one_graph_call(exported):
    graph = exported.scorer.model.signatures["generate_caption"].graph.as_graph_def()
    ops = {node.op for node in graph.node} | {node.op for f in graph.library.function for node in f.node_def}
    assert ops & {"While", "StatelessWhile"}, "the decoding loop must be a graph while loop"


def test_greedy_through_the_signature_matches_the_library(exported, tiny_model, features, images):
    model, _ = tiny_model
    served = generation.generate_with_signature(exported, images, beam_size=1)
    np.testing.assert_allclose(served["log_likelihood"][:, 0],
                               generation.greedy_search(model, features)["log_likelihood"].numpy(), atol=1e-4)
