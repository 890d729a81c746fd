"""The pairs CSV of `get_similarity_score.py --csv`: read as training reads one, written back in the same order
with the score columns and an `error` column."""

import csv
import dataclasses
import os

from captioning.data import readers
from captioning.inference.batch import ScoredPairs
from captioning.util.errors import InvalidInput


class CsvError(InvalidInput):
    """A CSV that cannot be read as pairs: missing, malformed or without the image_path,caption header."""


@dataclasses.dataclass
class PairsCsv:
    path: str
    fields: list  # column names in file order
    rows: list  # one dict per row, missing values as ""

    def image_paths(self) -> list:
        """Relative image paths are relative to the CSV's folder, as in captioning.data.readers.read_csv."""
        folder = os.path.dirname(os.path.abspath(self.path))
        return [os.path.join(folder, row["image_path"].strip()) for row in self.rows]

    def captions(self) -> list:
        return [row["caption"] for row in self.rows]


def read_pairs_csv(path: str) -> PairsCsv:
    """A CSV with at least `image_path,caption` columns, read as training reads one (readers.read_csv_rows); an
    empty value scores as an error row. CsvError when it cannot be read as one."""
    if not os.path.isfile(path):
        raise CsvError(f"{path}: no such file")
    try:
        fields, rows = readers.read_csv_rows(path)
    except ValueError as error:
        raise CsvError(str(error)) from None
    return PairsCsv(path, fields, rows)


def output_columns(fields, score_names) -> list:
    """The scored CSV's header: the input's columns, then the scores and `error`."""
    return list(dict.fromkeys([*fields, *score_names, "error"]))


def scored_row(row: dict, error, scores: dict, score_names) -> dict:
    """An input row with its score columns (`scores`: name -> this row's value) and its `error`; an error row
    gets empty scores."""
    if error:
        values = {name: "" for name in score_names}
    else:
        # str() of a numpy float32 is its shortest exact form, not float64 noise digits.
        values = {name: str(scores[name]) for name in score_names if name in scores}
    return {**row, **values, "error": error or ""}


def write_scored_csv(path: str, pairs: PairsCsv, scored: ScoredPairs, score_names) -> None:
    """The input rows in their order, with the score columns and an `error` column (empty when scored)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, output_columns(pairs.fields, score_names), extrasaction="ignore")
        writer.writeheader()
        for i, row in enumerate(pairs.rows):
            scores = {name: values[i] for name, values in scored.scores.items()}
            writer.writerow(scored_row(row, scored.errors[i], scores, score_names))
