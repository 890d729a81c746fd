"""Zero-shot labels: put each label into a prompt ("a photo of a {}"), score every prompt against the image with
the `score_matrix` signature, and rank the labels by the chosen score (captioning.inference.ranking)."""

from captioning.data.validation import caption_problem
from captioning.inference import batch, ranking

DEFAULT_TEMPLATE = "a photo of a {}"


class LabelsError(ValueError):
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


def rank_labels(model, image_bytes: list, labels, template: str = DEFAULT_TEMPLATE,
                rank_by: str = "log_likelihood", alpha: float = 1.0) -> list:
    """For each image, its labels best first: dicts of label, prompt, score (the `rank_by` value) and the
    log_likelihood, mean_log_prob, pmi (and contrastive, for a model with a contrastive head) of the prompt."""
    texts = prompts(labels, template)
    matrix = batch.score_matrix(model, image_bytes, texts)
    chosen = ranking.ranking_scores(matrix, rank_by, alpha)
    results = []
    for image in range(len(image_bytes)):
        rows = [{"label": label, "prompt": text, "score": float(chosen[image, j]),
                 **{name: float(values[image, j]) for name, values in matrix.items()}}
                for j, (label, text) in enumerate(zip(labels, texts))]
        results.append(sorted(rows, key=lambda row: -row["score"]))
    return results
