"""Server-side batching with TF Serving's semantics.

Concurrent requests to one signature of one servable are queued; a worker
takes the oldest request, waits until `max_batch_size` rows are queued or
`batch_timeout_micros` have passed since it arrived, concatenates the inputs
of compatible requests along the 0th dimension, makes one model call and
splits every output back by row.  Like TF Serving, a request with more rows
than `max_batch_size` is rejected rather than run alone, so a client that
works here works against TF Serving with the same batching parameters.
"""

import collections
import threading
import time
from dataclasses import dataclass

import numpy as np

from captioning.export.signatures import SIGNATURES
from serving.status import invalid_argument

DEFAULT_BATCHED_SIGNATURES = frozenset({"serving_default"})


@dataclass(frozen=True)
class BatchingOptions:
    max_batch_size: int = 64
    batch_timeout_micros: int = 5000
    # Only signatures whose outputs are row-aligned with their inputs may be
    # batched; score_matrix, for one, is not (the registry's `batches`).
    signatures: frozenset = DEFAULT_BATCHED_SIGNATURES

    def __post_init__(self):
        unbatchable = sorted(name for name in self.signatures if name in SIGNATURES and not SIGNATURES[name].batches)
        if unbatchable:
            raise ValueError(
                f"cannot batch {', '.join(unbatchable)}: its outputs are not one row per input row "
                "(captioning/export/signatures.py)"
            )


class _Task:
    def __init__(self, inputs, rows):
        self.inputs = inputs
        self.rows = rows
        # Requests merge only if every input has the same dtype and trailing shape.
        self.key = tuple((alias, a.dtype.str, a.shape[1:]) for alias, a in sorted(inputs.items()))
        self.arrived = time.monotonic()
        self.done = threading.Event()
        self.outputs = None
        self.error = None

    def finish(self, outputs=None, error=None):
        self.outputs, self.error = outputs, error
        self.done.set()


class Batcher:
    """Batches calls to `run(inputs) -> outputs` (dicts of numpy arrays)."""

    def __init__(self, run, options):
        self._run = run
        self._max_rows = options.max_batch_size
        self._timeout = options.batch_timeout_micros / 1e6
        self._queue = collections.deque()
        self._changed = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="batcher", daemon=True)
        self._worker.start()

    def submit(self, inputs):
        """Runs `inputs` as part of a batch and returns this request's outputs."""
        rows = _batch_rows(inputs)
        if rows > self._max_rows:
            raise invalid_argument(f"Task size {rows} is larger than maximum input batch size {self._max_rows}")
        with self._changed:
            queued = not self._closed
            if queued:
                task = _Task(inputs, rows)
                self._queue.append(task)
                self._changed.notify_all()
        if not queued:  # the servable is going away
            return self._run(inputs)
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def close(self):
        """Stops taking requests; returns once the queued ones are answered."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._worker.join()

    def _work(self):
        while (batch := self._next_batch()) is not None:
            self._process(batch)

    def _next_batch(self):
        with self._changed:
            while not self._queue:
                if self._closed:
                    return None
                self._changed.wait()
            head = self._queue[0]
            deadline = head.arrived + self._timeout
            while not self._closed and self._queued_rows(head.key) < self._max_rows:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            batch, rows, rest = [], 0, collections.deque()
            for task in self._queue:
                if task.key == head.key and rows + task.rows <= self._max_rows:
                    batch.append(task)
                    rows += task.rows
                else:
                    rest.append(task)
            self._queue = rest
            return batch

    def _queued_rows(self, key):
        return sum(task.rows for task in self._queue if task.key == key)

    def _process(self, batch):
        if len(batch) == 1:
            self._run_alone(batch[0])
            return
        merged = {alias: np.concatenate([task.inputs[alias] for task in batch]) for alias in batch[0].inputs}
        try:
            parts = _split(self._run(merged), [task.rows for task in batch])
        except Exception:
            # One bad request (say, a corrupt image) would fail everyone it was
            # merged with; rerun each alone so only its sender sees the error.
            for task in batch:
                self._run_alone(task)
            return
        for task, part in zip(batch, parts):
            task.finish(outputs=part)

    def _run_alone(self, task):
        try:
            task.finish(outputs=self._run(task.inputs))
        except Exception as error:  # delivered to, and raised by, the request's thread
            task.finish(error=error)


def _batch_rows(inputs):
    """The shared 0th dimension of all inputs, with TF Serving's errors."""
    sizes = set()
    for array in inputs.values():
        if array.ndim == 0:
            raise invalid_argument("Batching Run() input tensors must have at least one dimension")
        sizes.add(array.shape[0])
    if len(sizes) > 1:
        raise invalid_argument("Batching Run() input tensors must have equal 0th-dimension size")
    return sizes.pop() if sizes else 0


def _split(outputs, rows):
    total = sum(rows)
    for alias, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise ValueError(f"output {alias} of shape {array.shape} is not one row per input row")
    bounds = np.cumsum(rows)[:-1]
    per_output = {alias: np.split(array, bounds) for alias, array in outputs.items()}
    return [{alias: pieces[i] for alias, pieces in per_output.items()} for i in range(len(rows))]
