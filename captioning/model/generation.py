"""Caption generation: greedy and beam search over the Captioner's decoder, as graph code.

Both searches are `tf.while_loop`s over core ops, so they trace once inside a `tf.function` and serve from a
SavedModel in one call. Each step re-decodes the whole prefix (no key/value cache: captions are short).

A hypothesis's `log_likelihood` is the score of its text (docs/architecture.md): the sum of log p(word) over its
words and [end], exactly what serving_default returns for the generated caption. Hypotheses are ranked by
log_likelihood / num_tokens ** length_penalty: 0 ranks by log_likelihood, 1 by mean_log_prob.

[pad], [start] and [unk] are never generated (a caption must be a text that scores as itself), [end] never comes
first (an empty caption has nothing to score), and after `max_words` words only [end] may follow.
"""

import numpy as np
import tensorflow as tf

from captioning.data.text import END_ID, PAD_ID, START_ID, UNK_ID

_NEVER_GENERATED = (PAD_ID, START_ID, UNK_ID)


def max_words_for(model, max_length) -> tf.Tensor:
    """Requested caption length in words, capped by the decoder's positions; <= 0 means the model's maximum."""
    model_max = model.config.max_length - 1  # one position is [start]
    max_length = tf.cast(max_length, tf.int32)
    return tf.where((max_length <= 0) | (max_length > model_max), model_max, max_length)


def next_token_log_probs(model, image_features, tokens, step, max_words) -> tf.Tensor:
    """log p(next token | [start] + tokens, image) [N, V], with the tokens that may not come next at -inf.

    Allowed tokens keep their exact log-softmax values (no renormalisation), so sums of them are the scores that
    serving_default gives.
    """
    start = tf.fill([tf.shape(tokens)[0], 1], START_ID)
    logits = model.decode(image_features, tf.concat([start, tokens], axis=1))[:, -1]
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    vocab = tf.range(tf.shape(log_probs)[-1])
    banned = tf.reduce_any(vocab[:, None] == tf.constant(_NEVER_GENERATED), axis=1)
    banned |= (vocab == END_ID) & (step == 0)
    banned |= (vocab != END_ID) & (step >= max_words)
    return tf.where(banned[None], tf.constant(-np.inf, tf.float32), log_probs)


def greedy_search(model, image_features, max_length=0) -> dict:
    """The most probable next token at every step. image_features [B, G, D] ->
    tokens [B, T] (words, [end], then [pad]), log_likelihood [B], num_tokens [B]."""
    batch = tf.shape(image_features)[0]
    max_words = max_words_for(model, max_length)

    def step(t, tokens, log_likelihood, done):
        log_probs = next_token_log_probs(model, image_features, tokens, t, max_words)
        best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        token = tf.where(done, PAD_ID, best)
        log_likelihood += tf.where(done, 0.0, tf.gather(log_probs, best, batch_dims=1))
        return t + 1, tf.concat([tokens, token[:, None]], axis=1), log_likelihood, done | (token == END_ID)

    _, tokens, log_likelihood, _ = tf.while_loop(
        lambda t, tokens, log_likelihood, done: ~tf.reduce_all(done),
        step,
        (tf.constant(0), tf.zeros([batch, 0], tf.int32), tf.zeros([batch]), tf.zeros([batch], tf.bool)),
        shape_invariants=(
            tf.TensorShape([]),
            tf.TensorShape([None, None]),
            tf.TensorShape([None]),
            tf.TensorShape([None]),
        ),
    )
    return {
        "tokens": tokens,
        "log_likelihood": log_likelihood,
        "num_tokens": tf.reduce_sum(tf.cast(tokens != PAD_ID, tf.int32), axis=1),
    }


def ranking_scores(log_likelihood, num_tokens, length_penalty) -> tf.Tensor:
    return log_likelihood / tf.pow(tf.cast(num_tokens, tf.float32), tf.cast(length_penalty, tf.float32))


def beam_search(model, image_features, beam_size, max_length=0, length_penalty=0.0) -> dict:
    """The `beam_size` best-ranked hypotheses per image, best first. image_features [B, G, D] ->
    tokens [B, K, T], log_likelihood [B, K], num_tokens [B, K].

    A finished hypothesis keeps its place in the beam (extended only by [pad], at no cost) and competes with the
    unfinished ones on the ranking score; the search stops when every hypothesis in the beam has finished. With
    beam_size 1 this is exactly greedy search. If the vocabulary allows fewer than beam_size distinct captions,
    the missing hypotheses come last with log_likelihood -inf.
    """
    batch, beam_size = tf.shape(image_features)[0], tf.cast(beam_size, tf.int32)
    max_words = max_words_for(model, max_length)
    features = tf.repeat(image_features, beam_size, axis=0)  # [B * K, G, D], beam-major within each image
    # Only the first hypothesis is live at the start, so the first step does not pick one token K times.
    first_only = tf.where(tf.range(beam_size) == 0, 0.0, -np.inf)

    def step(t, tokens, log_likelihood, num_tokens, finished):
        log_probs = next_token_log_probs(model, features, tf.reshape(tokens, [batch * beam_size, t]), t, max_words)
        log_probs = tf.reshape(log_probs, [batch, beam_size, -1])
        vocab_size = tf.shape(log_probs)[-1]
        stay = tf.where(tf.range(vocab_size) == PAD_ID, 0.0, -np.inf)  # a finished hypothesis only waits
        log_probs = tf.where(finished[..., None], stay, log_probs)
        candidates = log_likelihood[..., None] + log_probs  # [B, K, V]
        lengths = tf.where(finished, num_tokens, t + 1)
        ranking = ranking_scores(candidates, lengths[..., None], length_penalty)
        _, chosen = tf.math.top_k(tf.reshape(ranking, [batch, -1]), k=beam_size)
        parent, token = chosen // vocab_size, chosen % vocab_size
        tokens = tf.concat([tf.gather(tokens, parent, batch_dims=1), token[..., None]], axis=2)
        log_likelihood = tf.gather(tf.reshape(candidates, [batch, -1]), chosen, batch_dims=1)
        num_tokens = tf.gather(lengths, parent, batch_dims=1)
        finished = tf.gather(finished, parent, batch_dims=1) | (token == END_ID)
        return t + 1, tokens, log_likelihood, num_tokens, finished

    _, tokens, log_likelihood, num_tokens, _ = tf.while_loop(
        lambda t, *state: ~tf.reduce_all(state[-1]),
        step,
        (
            tf.constant(0),
            tf.zeros([batch, beam_size, 0], tf.int32),
            tf.tile(first_only[None], [batch, 1]),
            tf.zeros([batch, beam_size], tf.int32),
            tf.zeros([batch, beam_size], tf.bool),
        ),
        shape_invariants=(
            tf.TensorShape([]),
            tf.TensorShape([None, None, None]),
            tf.TensorShape([None, None]),
            tf.TensorShape([None, None]),
            tf.TensorShape([None, None]),
        ),
    )
    # The loop keeps candidates in selection order; the final ranking can differ once lengths are known.
    _, order = tf.math.top_k(ranking_scores(log_likelihood, num_tokens, length_penalty), k=beam_size)
    return {
        "tokens": tf.gather(tokens, order, batch_dims=1),
        "log_likelihood": tf.gather(log_likelihood, order, batch_dims=1),
        "num_tokens": tf.gather(num_tokens, order, batch_dims=1),
    }


def generate(model, image_features, beam_size, max_length=0, length_penalty=0.0) -> dict:
    """Beam search, or plain greedy search when beam_size is 1 (the same result, less work); [B, K, ...]."""

    def greedy():
        return {name: value[:, None] for name, value in greedy_search(model, image_features, max_length).items()}

    return tf.cond(
        tf.equal(beam_size, 1),
        greedy,
        lambda: beam_search(model, image_features, beam_size, max_length, length_penalty),
    )
