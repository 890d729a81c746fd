"""Caption log-likelihood scores (docs/architecture.md, "Scores"), computed in TensorFlow so the same code runs in
memory, in the exported SavedModel and under TF Serving.

For image I and text T = y1..yn, y(n+1) = [end]: log_likelihood = sum_k log p(yk | y<k, I); the prior uses the
learned null image in place of I; pmi is their difference. Natural logs; larger always means more similar.
"""

import tensorflow as tf


def token_log_probs(logits: tf.Tensor, target_ids: tf.Tensor) -> tf.Tensor:
    """[B, L, V] logits and [B, L] targets -> [B, L] log p(target)."""
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    return tf.gather(log_probs, target_ids, batch_dims=2)


def sequence_log_likelihood(model, image_features, tokens) -> tf.Tensor:
    """Masked sum of the target tokens' log-probabilities: [B]."""
    logits = model.decode(image_features, tokens["input_ids"])
    return tf.reduce_sum(token_log_probs(logits, tokens["target_ids"]) * tokens["mask"], axis=1)


def prior_log_likelihood(model, tokens) -> tf.Tensor:
    batch = tf.shape(tokens["input_ids"])[0]
    return sequence_log_likelihood(model, model.null_features(batch), tokens)


def likelihood_scores(log_likelihood, num_tokens, unknown_tokens, truncated) -> dict:
    """The outputs that need no prior pass: what `score_text` returns."""
    mean_log_prob = log_likelihood / tf.cast(num_tokens, tf.float32)
    return {
        "log_likelihood": log_likelihood,
        "num_tokens": num_tokens,
        "mean_log_prob": mean_log_prob,
        "perplexity": tf.exp(-mean_log_prob),
        "unknown_tokens": unknown_tokens,
        "truncated": truncated,
    }


def derived_scores(log_likelihood, prior, num_tokens, unknown_tokens, truncated) -> dict:
    """serving_default's outputs from the two log-likelihoods and the token counts [B]."""
    return {
        **likelihood_scores(log_likelihood, num_tokens, unknown_tokens, truncated),
        "prior_log_likelihood": prior,
        "pmi": log_likelihood - prior,
    }


def _counts(tokens):
    return (tf.cast(tf.reduce_sum(tokens["mask"], axis=1), tf.int32), tokens["unknown_tokens"], tokens["truncated"])


def text_embeddings(model, tokens) -> tf.Tensor:
    return tf.cast(model.embed_texts(tokens["target_ids"]), tf.float32)


def image_embeddings(model, image_features) -> tf.Tensor:
    return tf.cast(model.embed_images(image_features), tf.float32)


def _with_contrastive(scores: dict, model, image_features, tokens) -> dict:
    """`contrastive` (the cosine similarity of the two unit embeddings) added when the model has the head."""
    if model.contrastive:
        scores["contrastive"] = tf.reduce_sum(
            image_embeddings(model, image_features) * text_embeddings(model, tokens), axis=1
        )
    return scores


def pair_scores(model, image_features, tokens) -> dict:
    """Every score (docs/architecture.md) for row-aligned image features [B, G, D] and tokenized texts [B]."""
    scores = derived_scores(
        sequence_log_likelihood(model, image_features, tokens), prior_log_likelihood(model, tokens), *_counts(tokens)
    )
    return _with_contrastive(scores, model, image_features, tokens)


def pair_likelihood_scores(model, image_features, tokens) -> dict:
    """pair_scores without the prior: the decoder runs once instead of twice (most callers rank by
    log_likelihood and never read the prior)."""
    scores = likelihood_scores(sequence_log_likelihood(model, image_features, tokens), *_counts(tokens))
    return _with_contrastive(scores, model, image_features, tokens)


def token_attention(model, image_features, tokens) -> dict:
    """Per predicted token: its log-probability `log_prob` [B, L] (0 on padding) and where the decoder looked over
    the image grid to predict it, `attention` [B, blocks, L, cells]: each block's cross-attention weights averaged
    over heads. Position k predicts target token k."""
    logits, attention = model.decode(image_features, tokens["input_ids"], return_attention=True)
    per_block = [tf.reduce_mean(tf.cast(weights, tf.float32), axis=1) for weights in attention]  # [B, L, cells]
    return {
        "attention": tf.stack(per_block, axis=1),
        "log_prob": token_log_probs(logits, tokens["target_ids"]) * tokens["mask"],
    }


def matrix_scores(model, image_features, tokens) -> dict:
    """Every image [N, G, D] against every text [M]: log_likelihood, mean_log_prob, pmi (and contrastive) as
    [N, M]. Each image is encoded once (the features come in); the decoder runs once per (image, text) pair, one
    image at a time so memory grows with M, not N * M."""
    num_texts = tf.shape(tokens["input_ids"])[0]

    def one_image(features):
        repeated = tf.repeat(features[None], num_texts, axis=0)
        return sequence_log_likelihood(model, repeated, tokens)

    log_likelihood = tf.map_fn(one_image, image_features, fn_output_signature=tf.float32)
    prior = prior_log_likelihood(model, tokens)
    num_tokens = tf.reduce_sum(tokens["mask"], axis=1)
    scores = {
        "log_likelihood": log_likelihood,
        "mean_log_prob": log_likelihood / num_tokens[None, :],
        "pmi": log_likelihood - prior[None, :],
    }
    if model.contrastive:
        scores["contrastive"] = tf.matmul(
            image_embeddings(model, image_features), text_embeddings(model, tokens), transpose_b=True
        )
    return scores
