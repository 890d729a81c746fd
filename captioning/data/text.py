"""Text normalisation, the vocabulary, and the in-graph tokenizer.

One TensorFlow function normalises text everywhere (vocabulary building, the tf.data pipeline and the exported
SavedModel), so serving never depends on Python-side tokenization.
"""

import collections
import dataclasses

import numpy as np
import tensorflow as tf

from captioning.util import atomic
from captioning.util.errors import InvalidInput

PAD, UNK, START, END = "[pad]", "[unk]", "[start]", "[end]"
SPECIAL_TOKENS = (PAD, UNK, START, END)
PAD_ID, UNK_ID, START_ID, END_ID = range(4)


def normalize(texts: tf.Tensor) -> tf.Tensor:
    """Lower-cases and replaces punctuation with spaces (so 'left-of' -> 'left of'); keeps the shape."""
    texts = tf.strings.lower(texts, encoding="utf-8")
    return tf.strings.regex_replace(texts, r"\pP", " ")


def split_words(texts: tf.Tensor) -> tf.RaggedTensor:
    """[B] strings -> ragged [B, (words)] after normalisation."""
    return tf.strings.split(normalize(texts))


def words_of(text: str) -> list[str]:
    """The words of one Python string, exactly as the graph splits them."""
    return [w.decode("utf-8") for w in split_words(tf.constant([text]))[0].numpy()]


def words_of_all(captions, chunk_size: int = 4096):
    """Every word of every caption in order, split by the graph `chunk_size` captions at a time."""
    for start in range(0, len(captions), chunk_size):
        for word in split_words(tf.constant(captions[start : start + chunk_size])).flat_values.numpy():
            yield word.decode("utf-8")


@dataclasses.dataclass
class Vocabulary:
    tokens: list[str]  # index = token id; the four special tokens come first

    @classmethod
    def build(cls, captions, max_size: int = 10000, min_count: int = 1) -> "Vocabulary":
        counts = collections.Counter(words_of_all(captions))
        # Most frequent first; ties broken alphabetically so the vocabulary is deterministic.
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(list(SPECIAL_TOKENS) + ranked[: max(0, max_size - len(SPECIAL_TOKENS))])

    def save(self, path: str) -> None:
        atomic.write_text(path, "\n".join(self.tokens) + "\n")

    @classmethod
    def load(cls, path: str) -> "Vocabulary":
        with open(path, encoding="utf-8") as f:
            tokens = f.read().splitlines()
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise InvalidInput(f"{path} is not a vocabulary file: it must start with {', '.join(SPECIAL_TOKENS)}")
        return cls(tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def unigram_log_probs(self, captions) -> np.ndarray:
        """Log frequency of each token as a caption target (words and [end]); initialises the output bias."""
        counts = np.ones(len(self), np.float64)  # add-one smoothing keeps every log finite
        index = {w: i for i, w in enumerate(self.tokens)}
        for word in words_of_all(captions):
            counts[index.get(word, UNK_ID)] += 1
        counts[END_ID] += len(captions)
        counts[PAD_ID] = counts[START_ID] = 1e-3  # never targets
        return np.log(counts / counts.sum()).astype(np.float32)


class Tokenizer(tf.Module):
    """Strings -> decoder inputs, targets and mask, inside the graph (a lookup table, no Python)."""

    def __init__(self, vocabulary: Vocabulary, max_length: int):
        super().__init__()
        self.max_length = max_length
        self.vocab = tf.constant(vocabulary.tokens)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self.vocab, tf.range(len(vocabulary), dtype=tf.int64)),
            default_value=UNK_ID,
        )

    def __call__(self, texts: tf.Tensor) -> dict:
        """[B] strings -> dict of input_ids/target_ids/mask [B, max_length] and per-text counts."""
        words = split_words(texts)
        truncated = words.row_lengths() > self.max_length - 1
        words = words[:, : self.max_length - 1]
        ids = tf.ragged.map_flat_values(self.table.lookup, words)
        batch = tf.shape(ids.row_lengths())[0]
        start = tf.fill([batch, 1], tf.constant(START_ID, tf.int64))
        end = tf.fill([batch, 1], tf.constant(END_ID, tf.int64))
        inputs = tf.concat([start, ids], axis=1)
        targets = tf.concat([ids, end], axis=1)
        shape = [None, self.max_length]
        target_ids = tf.cast(targets.to_tensor(PAD_ID, shape=shape), tf.int32)
        return {
            "input_ids": tf.cast(inputs.to_tensor(PAD_ID, shape=shape), tf.int32),
            "target_ids": target_ids,
            "mask": tf.cast(target_ids != PAD_ID, tf.float32),
            "num_words": tf.cast(ids.row_lengths(), tf.int32),
            "unknown_tokens": tf.reduce_sum(tf.cast(ids == UNK_ID, tf.int32), axis=1),
            "truncated": truncated,
        }

    def detokenize(self, ids: tf.Tensor) -> tf.Tensor:
        """[B, T] ids -> [B] strings, stopping at [end] and dropping special tokens."""
        ids = tf.cast(ids, tf.int32)
        before_end = tf.cumsum(tf.cast(ids == END_ID, tf.int32), axis=1, exclusive=True) == 0
        keep = before_end & (ids >= len(SPECIAL_TOKENS))
        words = tf.ragged.boolean_mask(tf.gather(self.vocab, ids), keep)
        return tf.strings.reduce_join(words, axis=1, separator=" ")
