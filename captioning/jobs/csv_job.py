"""The `get_similarity_score.py --csv` job: score every row of a pairs CSV, write the rows back with their
scores in the same order, draw the figures asked for, and report how fast it went."""

import dataclasses
import time

from captioning.export.signatures import SIGNATURES
from captioning.inference import batch, ranking
from captioning.jobs import pairs_csv
from captioning.util import figures, memory
from captioning.util.errors import InvalidInput

# serving_default's scores but the head's, in its order; the prior's need the second (null image) decoder pass.
SCORE_COLUMNS = tuple(SIGNATURES["serving_default"].output_names(head=False))
PRIOR_COLUMNS = tuple(name for name in SCORE_COLUMNS if name not in SIGNATURES["score_text"].output_names())


@dataclasses.dataclass
class JobSummary:
    rows: int
    errors: int
    images_encoded: int
    seconds: float  # reading the images, scoring and writing the CSV; drawing figures is not counted
    peak_memory_mb: float
    figures: list = dataclasses.field(default_factory=list)  # paths written

    def line(self) -> str:
        rate = (self.rows - self.errors) / max(self.seconds, 1e-9)
        return (
            f"scored {self.rows - self.errors} of {self.rows} pairs ({self.errors} with errors, "
            f"{self.images_encoded} distinct images encoded) in {self.seconds:.1f} s: {rate:.1f} pairs/s, "
            f"peak memory {self.peak_memory_mb:.0f} MB"
        )


def score_columns(likelihood_only: bool, contrastive: bool, debiased: bool) -> list:
    """The score columns of the scored CSV, in order: the prior's only with the prior pass, `contrastive` from a
    model with the head, `debiased` when ranking by it."""
    columns = [c for c in SCORE_COLUMNS if not (likelihood_only and c in PRIOR_COLUMNS)]
    return columns + ["contrastive"] * contrastive + ["debiased"] * debiased


def matrix_inputs(image_paths, captions, errors, max_images: int, max_texts: int) -> tuple[list, list]:
    """The first distinct scorable images and captions, in file order, capped so the figure stays legible."""
    usable = [i for i, error in enumerate(errors) if not error]
    images = list(dict.fromkeys(image_paths[i] for i in usable))[:max_images]
    texts = list(dict.fromkeys(captions[i] for i in usable))[:max_texts]
    return images, texts


def run_csv_job(
    model,
    pairs: pairs_csv.PairsCsv,
    output_path: str,
    rank_by: str = "log_likelihood",
    alpha: float = 1.0,
    image_captions_figure: str = None,
    similarity_matrix_figure: str = None,
    matrix_size: int = 30,
    progress: bool = True,
    likelihood_only: bool = False,
) -> JobSummary:
    """Scores `pairs` (pairs_csv.read_pairs_csv) into `output_path`; bad rows get an error column.
    `likelihood_only` skips the prior pass and its columns (rank_by must then not need the prior)."""
    if likelihood_only and rank_by not in ranking.LIKELIHOOD_SCORES:
        raise InvalidInput(f"ranking by {rank_by} needs the prior; drop --likelihood_only")
    started = time.perf_counter()
    image_paths, captions = pairs.image_paths(), pairs.captions()
    scored = batch.score_pairs(model, image_paths, captions, progress=progress, likelihood_only=likelihood_only)
    # The --rank_by score of every row (the figure's values and the debiased column); None when no row scored.
    ranked = ranking.ranking_scores(scored.scores, rank_by, alpha) if scored.scores else None
    if rank_by == "debiased" and ranked is not None:
        scored.scores["debiased"] = ranked
    columns = score_columns(likelihood_only, "contrastive" in scored.scores, "debiased" in scored.scores)
    pairs_csv.write_scored_csv(output_path, pairs, scored, columns)
    summary = JobSummary(
        len(pairs.rows),
        sum(1 for e in scored.errors if e),
        scored.images_encoded,
        time.perf_counter() - started,
        memory.peak_memory_mb(),
    )
    if image_captions_figure:
        values = [None] * len(captions) if ranked is None else ranked
        figures.draw_image_captions(image_captions_figure, image_paths, captions, values, scored.errors, rank_by)
        summary.figures.append(image_captions_figure)
    images, texts = matrix_inputs(image_paths, captions, scored.errors, matrix_size, matrix_size)
    if similarity_matrix_figure and images:  # with no scorable row there is nothing to draw
        matrix = batch.score_matrix(model, [batch.read_bytes(path) for path in images], texts)
        figures.draw_similarity_matrix(
            similarity_matrix_figure, images, texts, ranking.ranking_scores(matrix, rank_by, alpha), rank_by
        )
        summary.figures.append(similarity_matrix_figure)
    return summary
