"""The pairs CSV of `get_similarity_score.py --csv`: read as training reads one, written back in the same order
with the score columns and an `error` column."""

import csv
import dataclasses
import os

from captioning.data import readers
from captioning.inference.batch import ScoredPairs


class CsvError(ValueError):
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


def write_scored_csv(path: str, pairs: PairsCsv, scored: ScoredPairs, score_names) -> None:
    """The input rows in their order, with the score columns and an `error` column (empty when scored)."""
    columns = list(dict.fromkeys([*pairs.fields, *score_names, "error"]))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        for i, row in enumerate(pairs.rows):
            if scored.errors[i]:
                values = {name: "" for name in score_names}
            else:
                # str() of a numpy float32 is its shortest exact form, not float64 noise digits.
                values = {name: str(scored.scores[name][i]) for name in score_names if name in scored.scores}
            writer.writerow({**row, **values, "error": scored.errors[i] or ""})
