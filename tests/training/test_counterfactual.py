"""The counterfactual numbers loss: which words it swaps, that it is -log sigmoid of the log-likelihood gap over
exactly the rows that state a number and see their image, and that training with it widens that gap."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from captioning.data.text import Tokenizer, Vocabulary
from captioning.model.captioner import Captioner
from captioning.model.scoring import sequence_log_likelihood
from captioning.training.counterfactual import counterfactual_loss_sum, number_swap_table
from tests.helpers import TINY_MODEL, TINY_TRAINING, write_image

CAPTIONS = ["two red stars", "a red star left of a blue circle", "three stars", "two blue circles"]


def swaps(vocabulary):
    table = number_swap_table(vocabulary)
    return {vocabulary.tokens[i]: vocabulary.tokens[j] for i, j in enumerate(table) if i != j}


def test_each_number_word_goes_to_the_next_number_the_vocabulary_holds():
    assert swaps(Vocabulary.build(CAPTIONS)) == {"two": "three", "three": "two"}
    counted = Vocabulary.build(["one dog", "two dogs", "four dogs", "ten dogs"])
    assert swaps(counted) == {"one": "two", "two": "four", "four": "ten", "ten": "four"}
    assert swaps(Vocabulary.build(["two dogs", "a cat"])) == {}  # nothing to swap to: never [unk]


@pytest.fixture(scope="module")
def model_and_tokenizer():
    vocabulary = Vocabulary.build(CAPTIONS)
    model = Captioner(dataclasses.replace(TINY_MODEL, vocab_size=len(vocabulary)))
    return model, Tokenizer(vocabulary, TINY_MODEL.max_length), number_swap_table(vocabulary)


def test_the_loss_is_the_log_likelihood_gap_of_rows_stating_a_number_that_see_their_image(model_and_tokenizer):
    model, tokenizer, table = model_and_tokenizer
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    features = model.encode_images(images)
    batch = dict(tokenizer(tf.constant(CAPTIONS)))
    batch["use_null_image"] = tf.constant([False, False, False, True])  # the last row's number is not judged
    logits = model.decode(features, batch["input_ids"])
    loss = float(counterfactual_loss_sum(model, features, batch, tf.constant(table), logits))

    true = sequence_log_likelihood(model, features, batch).numpy()
    swapped = sequence_log_likelihood(model, features, tokenizer(tf.constant(
        ["three red stars", CAPTIONS[1], "two stars", "three blue circles"]))).numpy()
    expected = sum(np.log1p(np.exp(swapped[i] - true[i])) for i in (0, 2))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_no_row_stating_a_number_costs_nothing(model_and_tokenizer):
    model, tokenizer, table = model_and_tokenizer
    features = model.encode_images(np.zeros((1, 32, 32, 3), np.float32))
    batch = {**tokenizer(tf.constant([CAPTIONS[1]])), "use_null_image": tf.constant([False])}
    logits = model.decode(features, batch["input_ids"])
    assert float(counterfactual_loss_sum(model, features, batch, tf.constant(table), logits)) == 0.0


def test_training_with_it_widens_the_gap_to_the_swapped_number(tmp_path):
    from captioning.data.examples import CaptionExample
    from captioning.training.loop import Trainer

    # One image, one true count: the loss must push the swapped number down where the caption loss alone does not.
    image = write_image(tmp_path / "scene.png")
    examples = [CaptionExample(image, caption, "scene") for caption in ("two red stars", "a red star") * 8]
    vocabulary = Vocabulary.build(["two red stars", "three red stars", "a red star"])
    config = dataclasses.replace(TINY_MODEL, vocab_size=len(vocabulary), image_dropout=0.0)
    gaps = {}
    for weight in (0.0, 1.0):
        training = dataclasses.replace(TINY_TRAINING, counterfactual_weight=weight, steps_per_epoch=20)
        trainer = Trainer(config, training, vocabulary, str(tmp_path / f"run{weight}"))
        trainer.fit(examples, [], log=lambda *_: None)
        assert ("counterfactual_loss" in trainer.metric_names) == bool(weight)
        pixels = tf.io.decode_png(tf.io.read_file(image))[None]
        features = trainer.model.encode_images(tf.cast(pixels, tf.float32))
        true, swapped = (float(sequence_log_likelihood(trainer.model, features, trainer.tokenizer(tf.constant([t])))[0])
                         for t in ("two red stars", "three red stars"))
        gaps[weight] = true - swapped
    assert gaps[1.0] > gaps[0.0] + 1.0, gaps
