"""Scores: the exported SavedModel equals the in-memory model, and every number matches the definitions in
docs/architecture.md computed independently (numpy, from the model's logits)."""

import numpy as np
import pytest
import tensorflow as tf

from captioning.data.text import END_ID, START_ID, UNK_ID
from captioning.export.saved_model import ScoringModule
from captioning.inference.local import SavedModelScorer

TEXTS = ["a red circle", "There is a LARGE blue square, on the left!", "a zebra next to a circle"]


@pytest.fixture(scope="module")
def image_bytes(sample_images):
    paths, _ = sample_images
    return [open(path, "rb").read() for path in paths]


@pytest.fixture(scope="module")
def exported(tiny_export_dir):
    return SavedModelScorer(tiny_export_dir)


def numpy_log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def independent_scores(model, vocabulary, image, text):
    """The scores of docs/architecture.md for one pair, from the Keras model's logits with a Python tokenization."""
    index = {word: i for i, word in enumerate(vocabulary.tokens)}
    words = text.lower().replace(",", " ").replace("!", " ").split()
    ids = [index.get(word, UNK_ID) for word in words]
    inputs, targets = np.array([[START_ID] + ids]), ids + [END_ID]
    pixels = tf.cast(tf.io.decode_image(image, channels=3), tf.float32)[None]

    def log_likelihood(use_null_image):
        logits = model(pixels, inputs, np.array([use_null_image]))[0].numpy().astype(np.float64)
        log_probs = numpy_log_softmax(logits)
        return sum(log_probs[k, target] for k, target in enumerate(targets))

    with_image, prior = log_likelihood(False), log_likelihood(True)
    return {
        "log_likelihood": with_image,
        "num_tokens": len(targets),
        "mean_log_prob": with_image / len(targets),
        "perplexity": np.exp(-with_image / len(targets)),
        "prior_log_likelihood": prior,
        "pmi": with_image - prior,
        "unknown_tokens": ids.count(UNK_ID),
    }


def test_exported_scores_equal_the_in_memory_model(tiny_model, image_bytes, exported):
    model, vocabulary = tiny_model
    module = ScoringModule(model, vocabulary)  # held: a tf.function method keeps only a weak reference to it
    in_memory = module.serving_default(tf.constant(image_bytes), tf.constant(TEXTS))
    reloaded = exported.score(image_bytes, TEXTS)
    assert set(reloaded) == set(in_memory)
    for name, value in in_memory.items():
        np.testing.assert_allclose(reloaded[name], value.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)


def test_scores_follow_their_definitions(tiny_model, image_bytes, exported):
    model, vocabulary = tiny_model
    served = exported.score(image_bytes, TEXTS)
    for row, (image, text) in enumerate(zip(image_bytes, TEXTS)):
        expected = independent_scores(model, vocabulary, image, text)
        for name, value in expected.items():
            np.testing.assert_allclose(served[name][row], value, rtol=1e-4, atol=1e-4, err_msg=f"{name}: {text}")


def test_an_unknown_word_gives_a_finite_score(image_bytes, exported):
    scores = exported.score(image_bytes[:1], ["a zebra circle"])
    assert scores["unknown_tokens"][0] == 1
    assert all(np.isfinite(scores[name][0]) for name in ("log_likelihood", "prior_log_likelihood", "pmi"))


def test_a_long_text_is_truncated_and_says_so(image_bytes, exported, tiny_model):
    max_length = tiny_model[0].config.max_length
    scores = exported.score(image_bytes[:2], ["circle " * 100, "a red circle"])
    assert scores["truncated"].tolist() == [True, False]
    assert scores["num_tokens"][0] == max_length


def test_an_empty_text_is_rejected(image_bytes, exported):
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one word"):
        exported.score(image_bytes[:1], [" ?! "])


def test_score_matrix_equals_pairwise_scores(image_bytes, exported):
    matrix = exported.score_matrix(image_bytes, TEXTS)
    pairs = exported.score([image for image in image_bytes for _ in TEXTS], TEXTS * len(image_bytes))
    for name in ("log_likelihood", "mean_log_prob", "pmi"):
        np.testing.assert_allclose(matrix[name].ravel(), pairs[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_score_text_gives_serving_defaults_likelihoods_without_the_prior(image_bytes, exported):
    full = exported.score(image_bytes, TEXTS)
    likelihood_only = exported.run("score_text", {"image_bytes": image_bytes, "text": TEXTS})
    assert set(likelihood_only) == set(full) - {"prior_log_likelihood", "pmi"}
    for name, values in likelihood_only.items():
        np.testing.assert_allclose(values, full[name], rtol=1e-5, atol=1e-5, err_msg=name)
    with pytest.raises(tf.errors.InvalidArgumentError, match="row-aligned"):
        exported.run("score_text", {"image_bytes": image_bytes, "text": TEXTS[:1]})
