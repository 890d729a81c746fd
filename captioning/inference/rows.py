"""Calls of a signature over many rows, in pieces a server accepts."""

import numpy as np

# A TF Serving with batching on rejects calls with more rows than its max_batch_size (64 in
# serving/batching_parameters.config), and so does the project's server for serving_default.
MAX_ROWS_PER_CALL = 64


def run_in_batches(model, name: str, rows: dict, batch_size: int = MAX_ROWS_PER_CALL, **constants) -> dict:
    """Runs signature `name` over row-aligned inputs `rows` (lists of one length) `batch_size` rows per call,
    passing `constants` (scalar inputs) to every call; returns the outputs concatenated along the rows."""
    count = len(next(iter(rows.values())))
    parts = [
        model.run(name, {**{key: values[start : start + batch_size] for key, values in rows.items()}, **constants})
        for start in range(0, count, batch_size)
    ]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
