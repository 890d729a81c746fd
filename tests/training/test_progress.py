"""Training progress in a file or pipe: one line per N steps, not a bar frame per step."""

from captioning.training.progress import Progress


def test_a_pipe_gets_one_line_per_n_steps_and_the_last_step():
    lines = []
    progress = Progress(100, every=25, log=lines.append, terminal=False)
    progress.update(0)
    for done in range(16, 100, 16):  # several steps per update, as with --steps_per_loop 16
        progress.update(done, {"loss": 2.0, "accuracy": 0.5})
    progress.update(100, {"loss": 1.5, "accuracy": 0.625})
    assert [line.split(" - ")[0] for line in lines] == ["step 32/100", "step 64/100", "step 80/100", "step 100/100"]
    assert lines[-1].startswith("step 100/100 - loss 1.5000 - accuracy 0.6250 - ") and lines[-1].endswith("steps/s")


def test_a_resumed_epoch_counts_from_where_it_resumed():
    lines = []
    progress = Progress(100, every=50, log=lines.append, terminal=False)
    progress.update(60)
    progress.update(70)
    progress.update(100)
    assert [line.split(" - ")[0] for line in lines] == ["step 100/100"]
