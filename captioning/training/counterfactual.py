"""Counterfactual numbers, a training loss beside the caption loss: a caption that states a number ("two red
stars") should be more likely under its image than the same caption with the number changed ("three red stars").

The caption loss never shows the model a changed number, so it never learns what the words after a wrong number
should cost: the diagnosis in the README found them scored by the language prior alone, the image unread. This
loss contrasts the two captions under the same image, as "Teaching CLIP to Count to Ten" (Paiss et al., 2023)
does with counterfactual captions for CLIP.
"""

import numpy as np
import tensorflow as tf

from captioning.data.text import Vocabulary
from captioning.model.scoring import token_log_probs

NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def number_swap_table(vocabulary: Vocabulary) -> np.ndarray:
    """[vocab] token id -> the id of its counterfactual: each number word goes to the next number up that the
    vocabulary holds, else the next one down (so it is never [unk], which would cost nothing to rule out); every
    other token to itself. A vocabulary with fewer than two number words swaps nothing."""
    table = np.arange(len(vocabulary.tokens), dtype=np.int32)
    ids = {word: vocabulary.tokens.index(word) for word in NUMBER_WORDS if word in vocabulary.tokens}
    known = [word for word in NUMBER_WORDS if word in ids]
    for i, word in enumerate(known):
        if len(known) > 1:
            table[ids[word]] = ids[known[i + 1] if i + 1 < len(known) else known[i - 1]]
    return table


def counterfactual_loss_sum(model, features, batch, swap_table, caption_logits, training=False):
    """Summed -log sigmoid(LL(caption) - LL(caption with its numbers swapped)) over this replica's rows that
    state a number and see their image (not the null one); 0 when no row does. Only those rows are decoded again.
    `caption_logits` are the decoder's logits for the true captions, already computed for the caption loss."""
    swapped_targets = tf.gather(swap_table, batch["target_ids"])
    rows = tf.reduce_any(swapped_targets != batch["target_ids"], axis=1) & tf.logical_not(batch["use_null_image"])
    mask = tf.boolean_mask(batch["mask"], rows)
    true_ll = tf.reduce_sum(token_log_probs(tf.boolean_mask(caption_logits, rows),
                                            tf.boolean_mask(batch["target_ids"], rows)) * mask, axis=1)
    swapped_logits = model.decode(tf.boolean_mask(features, rows),
                                  tf.gather(swap_table, tf.boolean_mask(batch["input_ids"], rows)), training=training)
    swapped_ll = tf.reduce_sum(token_log_probs(swapped_logits, tf.boolean_mask(swapped_targets, rows)) * mask, axis=1)
    return tf.reduce_sum(tf.nn.softplus(swapped_ll - true_ll))
