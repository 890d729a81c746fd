"""Zero-shot labels: put each label into a prompt ("a {}"), score every prompt against the image with the
`score_matrix` signature, and rank the labels by the chosen score (captioning.inference.ranking).

A word the model's vocabulary lacks reads as [unk], so its prompt scores like any other unknown word's: such
labels are flagged (`unknown_words`). The default prompt is made of words the built-in scenes' captions use
("a photo of a {}" spent a word the default model never saw on every label). `confidence` is the softmax of the
ranking scores over the image's labels: with log-likelihoods, P(label | image) when one label is true.
"""

import os

import numpy as np

from captioning.data.validation import caption_problem
from captioning.export.layout import VOCABULARY_FILE
from captioning.inference import batch, ranking
from captioning.util.errors import InvalidInput

DEFAULT_TEMPLATE = "a {}"


class LabelsError(InvalidInput):
    """No usable labels, or a prompt template without a `{}` for the label."""


def read_labels(labels=(), labels_file: str = None) -> list:
    """Labels from a list (--labels) and/or a file with one label per line; blanks dropped, order kept,
    duplicates once."""
    found = [label.strip() for label in labels]
    if labels_file:
        try:
            with open(labels_file, encoding="utf-8") as f:
                found += [line.strip() for line in f]
        except OSError as error:
            raise LabelsError(f"{labels_file}: cannot read labels file ({error.strerror})") from None
    found = list(dict.fromkeys(label for label in found if label))
    wordless = [label for label in found if caption_problem(label)]
    if wordless:
        raise LabelsError(f"label {wordless[0]!r} has no words to score")
    if not found:
        raise LabelsError("give at least one label (--labels a,b,c or --labels_file)")
    return found


def prompts(labels, template: str = DEFAULT_TEMPLATE) -> list:
    if template.count("{}") != 1:
        raise LabelsError(f"the prompt template needs exactly one {{}} for the label, got {template!r}")
    return [template.replace("{}", label) for label in labels]


def model_vocabulary(model):
    """The words a model knows, from the vocabulary exported beside it; None when that file is out of reach (a
    model on a remote server) or absent."""
    from captioning.data.text import SPECIAL_TOKENS, Vocabulary  # imports TensorFlow: not for a bad invocation

    path = model.extra_file(VOCABULARY_FILE)
    if not path or not os.path.exists(path):
        return None
    return set(Vocabulary.load(path).tokens) - set(SPECIAL_TOKENS)


def unknown_words(texts, known) -> list:
    """For each text, its words (as the model splits them) that `known` lacks, each once."""
    from captioning.data.text import split_words  # imports TensorFlow: not for a bad invocation

    split = split_words(np.array(texts, dtype=object)).to_list()
    return [[word for word in dict.fromkeys(w.decode("utf-8") for w in words) if word not in known] for words in split]


def softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax along the last axis, shifted by the maximum so large negative log-likelihoods do not underflow."""
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def rank_labels(
    model,
    image_bytes: list,
    labels,
    template: str = DEFAULT_TEMPLATE,
    rank_by: str = "log_likelihood",
    alpha: float = 1.0,
) -> list:
    """For each image, its labels best first: dicts of label, prompt, score (the `rank_by` value), confidence
    (softmax of the scores over the labels), unknown_words (the prompt's words the model lacks; None when its
    vocabulary is out of reach) and the log_likelihood, mean_log_prob, pmi (and contrastive, for a model with a
    contrastive head) of the prompt."""
    texts = prompts(labels, template)
    matrix = batch.score_matrix(model, image_bytes, texts)
    chosen = np.asarray(ranking.ranking_scores(matrix, rank_by, alpha), np.float64)
    confidence = softmax(chosen)
    known = model_vocabulary(model)
    unknown = unknown_words(texts, known) if known is not None else [None] * len(texts)
    results = []
    for image in range(len(image_bytes)):
        rows = [
            {
                "label": label,
                "prompt": text,
                "score": float(chosen[image, j]),
                "confidence": float(confidence[image, j]),
                "unknown_words": unknown[j],
                **{name: float(values[image, j]) for name, values in matrix.items()},
            }
            for j, (label, text) in enumerate(zip(labels, texts))
        ]
        results.append(sorted(rows, key=lambda row: -row["score"]))
    return results
