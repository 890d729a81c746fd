"""Training progress: a live bar on a terminal, one plain line every N steps in a file or pipe (a log gets no
thousands of bar frames)."""

import sys
import time

import keras


class Progress:
    """Progress through one epoch of `total` steps; `update` takes the steps done so far and the latest metrics."""

    def __init__(self, total: int, every: int = 50, log=print, terminal: bool = None):
        self.total, self.every, self.log = total, max(1, every), log
        terminal = sys.stdout.isatty() if terminal is None else terminal
        self._bar = keras.utils.Progbar(total, stateful_metrics=["loss", "accuracy"]) if terminal else None
        self._last_line = self._start = None
        self._started = time.perf_counter()

    def update(self, done: int, metrics: dict = None) -> None:
        metrics = metrics or {}
        if self._bar is not None:
            self._bar.update(done, list(metrics.items()))
            return
        if self._start is None:  # a resumed epoch starts part-way: rates count from here
            self._start = self._last_line = done
            return
        # A line when a multiple of `every` was passed since the last one (several steps may come per update).
        if done // self.every > self._last_line // self.every or done == self.total:
            seconds = time.perf_counter() - self._started
            rate = (done - self._start) / max(seconds, 1e-9)
            values = "".join(f" - {name} {value:.4f}" for name, value in metrics.items())
            self.log(f"step {done}/{self.total}{values} - {rate:.2f} steps/s")
            self._last_line = done
