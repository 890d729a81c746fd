import numpy as np
import tensorflow as tf

from captioning.data.text import END_ID, PAD_ID, START_ID, UNK_ID, Tokenizer, Vocabulary, normalize, words_of


def test_normalize_lowercases_and_strips_punctuation():
    texts = tf.constant(["A Red-Circle, LEFT of: the Star!", "Ünïcode ÄND “quotes”"])
    assert [t.decode() for t in normalize(texts).numpy()] == [
        "a red circle  left of  the star ",
        "ünïcode änd  quotes ",
    ]
    assert words_of("  A  red   circle... ") == ["a", "red", "circle"]


def test_vocabulary_is_frequency_ordered_and_round_trips(tmp_path):
    vocabulary = Vocabulary.build(["a red circle", "a blue circle", "A red star!"])
    assert vocabulary.tokens[:4] == ["[pad]", "[unk]", "[start]", "[end]"]
    assert vocabulary.tokens[4:] == ["a", "circle", "red", "blue", "star"]  # by count, then alphabetically
    path = tmp_path / "vocabulary.txt"
    vocabulary.save(str(path))
    assert Vocabulary.load(str(path)) == vocabulary


def test_vocabulary_size_cap_and_min_count():
    vocabulary = Vocabulary.build(["a a a b b c"], max_size=6)
    assert vocabulary.tokens[4:] == ["a", "b"]
    assert Vocabulary.build(["a a b"], min_count=2).tokens[4:] == ["a"]


def test_tokenizer_shifts_targets_masks_padding_and_counts_unknown_words():
    vocabulary = Vocabulary.build(["a red circle"])
    tokens = Tokenizer(vocabulary, max_length=6)(tf.constant(["A red zebra", "circle"]))
    a, red, circle = (vocabulary.tokens.index(w) for w in ("a", "red", "circle"))
    np.testing.assert_array_equal(
        tokens["input_ids"], [[START_ID, a, red, UNK_ID, 0, 0], [START_ID, circle, 0, 0, 0, 0]]
    )
    np.testing.assert_array_equal(tokens["target_ids"], [[a, red, UNK_ID, END_ID, 0, 0], [circle, END_ID, 0, 0, 0, 0]])
    np.testing.assert_array_equal(tokens["mask"], [[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(tokens["unknown_tokens"], [1, 0])
    np.testing.assert_array_equal(tokens["truncated"], [False, False])


def test_tokenizer_truncates_long_texts_and_says_so():
    vocabulary = Vocabulary.build(["w"])
    tokens = Tokenizer(vocabulary, max_length=4)(tf.constant(["w w w w w w w", "w w w"]))
    np.testing.assert_array_equal(tokens["truncated"], [True, False])
    np.testing.assert_array_equal(tokens["mask"].numpy().sum(axis=1), [4, 4])  # 3 words + [end] fit exactly
    assert tokens["target_ids"].numpy()[0, -1] == END_ID


def test_detokenize_stops_at_end_and_skips_special_tokens():
    vocabulary = Vocabulary.build(["a red circle"])
    tokenizer = Tokenizer(vocabulary, max_length=8)
    ids = tokenizer(tf.constant(["a red circle"]))["target_ids"]
    ids = tf.concat([ids[:, :3], [[END_ID, 4, 5]]], axis=1)  # words after [end] must be dropped
    assert tokenizer.detokenize(ids).numpy().tolist() == [b"a red circle"]
    assert tokenizer.detokenize(tf.constant([[PAD_ID, UNK_ID, END_ID]])).numpy().tolist() == [b""]
