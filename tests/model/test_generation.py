"""Greedy and beam search in the graph: width 1 is greedy, hypotheses come best first and distinct, captions
end once and respect max_length."""

import numpy as np
import pytest

from captioning.data.text import END_ID, PAD_ID
from captioning.model import generation


def test_beam_search_of_width_one_is_greedy_search(tiny_model, sample_features):
    model, _ = tiny_model
    greedy = generation.greedy_search(model, sample_features)
    beam = generation.beam_search(model, sample_features, beam_size=1)
    np.testing.assert_array_equal(beam["tokens"][:, 0].numpy(), greedy["tokens"].numpy())
    np.testing.assert_allclose(beam["log_likelihood"][:, 0].numpy(), greedy["log_likelihood"].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(beam["num_tokens"][:, 0].numpy(), greedy["num_tokens"].numpy())


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_hypotheses_come_best_first_and_are_distinct(tiny_model, sample_features, length_penalty):
    model, _ = tiny_model
    beam = generation.beam_search(model, sample_features, beam_size=4, length_penalty=length_penalty)
    ranking = generation.ranking_scores(beam["log_likelihood"], beam["num_tokens"], length_penalty).numpy()
    assert np.all(np.diff(ranking, axis=1) <= 1e-6), ranking
    for hypotheses in beam["tokens"].numpy():
        assert len({tuple(tokens) for tokens in hypotheses}) == len(hypotheses)


def test_the_best_beam_is_at_least_as_likely_as_greedy(tiny_model, sample_features):
    model, _ = tiny_model
    greedy = generation.greedy_search(model, sample_features)
    beam = generation.beam_search(model, sample_features, beam_size=4)
    assert np.all(beam["log_likelihood"][:, 0].numpy() >= greedy["log_likelihood"].numpy() - 1e-5)


def test_captions_end_once_and_respect_max_length(tiny_model, sample_features):
    model, _ = tiny_model
    beam = generation.beam_search(model, sample_features, beam_size=3, max_length=3)
    tokens, num_tokens = beam["tokens"].numpy(), beam["num_tokens"].numpy()
    assert np.all(num_tokens <= 4)  # three words and [end]
    for hypothesis, count in zip(tokens.reshape(-1, tokens.shape[-1]), num_tokens.ravel()):
        assert list(hypothesis[:count]).count(END_ID) == 1 and hypothesis[count - 1] == END_ID
        assert np.all(hypothesis[count:] == PAD_ID)
