"""Scoring many (image, caption) rows fast: each distinct image is read, decoded and encoded once (the model's
`encode_image` signature), then its rows are scored from those features (`score_features`, which returns
exactly serving_default's numbers) in batches of texts of similar length. Rows that cannot be scored get an
error message instead of stopping the job.

    scored = score_pairs(open_model("checkpoints/export"), image_paths, captions)
"""

import dataclasses

import numpy as np

from captioning.data.validation import caption_problem, image_problem
from captioning.inference.rows import MAX_ROWS_PER_CALL
from captioning.inference.runners import InvalidInputError
from captioning.util.progress_bars import progress_bar

ERROR_MESSAGES = {
    "missing_image": "missing image",
    "unreadable_image": "unreadable image",
    "unsupported_format": "unsupported image format (use JPEG, PNG, BMP or GIF)",
    "empty_caption": "empty caption (no words to score)",
}


@dataclasses.dataclass
class ScoredPairs:
    scores: dict  # output name -> array [rows]; rows with an error hold zeros
    errors: list  # per row: None, or why the row was not scored
    images_encoded: int


def image_errors(paths) -> dict:
    """{path: error message} for the distinct paths whose file is missing or cannot be decoded."""
    problems = {path: image_problem(path) for path in dict.fromkeys(paths)}
    return {path: ERROR_MESSAGES[problem] for path, problem in problems.items() if problem}


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def encode_images(model, image_bytes: list, batch_size: int = MAX_ROWS_PER_CALL) -> list:
    """Features [G, D] per image, or None for an image the model cannot decode (found by retrying one by one)."""
    if len(image_bytes) > batch_size:
        return [
            features
            for start in range(0, len(image_bytes), batch_size)
            for features in encode_images(model, image_bytes[start : start + batch_size], batch_size)
        ]
    try:
        return list(model.run("encode_image", {"image_bytes": image_bytes})["image_features"])
    except InvalidInputError:
        if len(image_bytes) == 1:
            return [None]
        return [features for one in image_bytes for features in encode_images(model, [one])]


def _batches_by_length(rows, captions, batch_size):
    # Whitespace words approximate the tokenizer's count well enough to group texts of similar length.
    ordered = sorted(rows, key=lambda row: len(captions[row].split()))
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


def pair_error(image_error, caption: str):
    """Why a row cannot be scored (its image's error first, then an empty caption), or None."""
    return image_error or (caption_problem(caption) and ERROR_MESSAGES["empty_caption"]) or None


def score_encoded(
    model,
    features: list,
    captions: list,
    batch_size: int = MAX_ROWS_PER_CALL,
    likelihood_only: bool = False,
    on_batch=None,
) -> dict:
    """Scores row i = (features[i], an image's encode_image features, captions[i]) in batches of texts of similar
    length -> {output name: array [rows]} in row order. `on_batch(rows)` is called after each batch."""
    scores = {}
    for batch in _batches_by_length(range(len(captions)), captions, batch_size):
        outputs = model.run(
            "score_text_features" if likelihood_only else "score_features",
            {"image_features": np.stack([features[row] for row in batch]), "text": [captions[row] for row in batch]},
        )
        for name, values in outputs.items():
            scores.setdefault(name, np.zeros(len(captions), values.dtype))[batch] = values
        if on_batch:
            on_batch(len(batch))
    return scores


def score_pairs(
    model,
    image_paths,
    captions,
    batch_size: int = MAX_ROWS_PER_CALL,
    images_per_chunk: int = 256,
    progress: bool = True,
    likelihood_only: bool = False,
) -> ScoredPairs:
    """Scores row i = (image_paths[i], captions[i]) for every row; results come back in row order.
    `likelihood_only` skips the prior pass (`score_text_features`): no prior_log_likelihood or pmi, half the
    decoder work.

    Images are read and encoded in chunks of `images_per_chunk` distinct images, so memory holds one chunk's
    files and features whatever the size of the CSV.
    """
    bad_images = image_errors(image_paths)
    errors = [pair_error(bad_images.get(path), caption) for path, caption in zip(image_paths, captions)]
    rows_of_image = {}
    for row, path in enumerate(image_paths):
        if errors[row] is None:
            rows_of_image.setdefault(path, []).append(row)
    scores, encoded = {}, 0
    paths = list(rows_of_image)
    total = sum(map(len, rows_of_image.values()))
    with progress_bar(total=total, unit="pair", desc="scoring", disable=not progress) as bar:
        for start in range(0, len(paths), images_per_chunk):
            chunk = paths[start : start + images_per_chunk]
            features = dict(zip(chunk, encode_images(model, [read_bytes(path) for path in chunk])))
            encoded += len(chunk)
            rows = []
            for path in chunk:
                if features[path] is None:
                    for row in rows_of_image[path]:
                        errors[row] = ERROR_MESSAGES["unreadable_image"]
                else:
                    rows += rows_of_image[path]
            chunk_scores = score_encoded(
                model,
                [features[image_paths[row]] for row in rows],
                [captions[row] for row in rows],
                batch_size,
                likelihood_only,
                bar.update,
            )
            for name, values in chunk_scores.items():
                scores.setdefault(name, np.zeros(len(captions), values.dtype))[rows] = values
    return ScoredPairs(scores, errors, encoded)


def score_matrix(model, image_bytes: list, texts: list, images_per_call: int = 8, texts_per_call: int = 256) -> dict:
    """Every image against every text with the `score_matrix` signature -> {score: [N, M]}, in blocks small enough
    to keep the decoder's [texts, length, vocabulary] logits in memory."""
    blocks = [
        [
            model.run(
                "score_matrix",
                {"image_bytes": image_bytes[i : i + images_per_call], "text": texts[j : j + texts_per_call]},
            )
            for j in range(0, len(texts), texts_per_call)
        ]
        for i in range(0, len(image_bytes), images_per_call)
    ]
    return {name: np.block([[block[name] for block in row] for row in blocks]) for name in blocks[0][0]}
