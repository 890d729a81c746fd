"""Progress in a log file or a pipe is whole lines, now and then; never carriage-return frames."""

import io

from captioning.util.progress_bars import progress_bar


def test_a_file_gets_whole_lines_without_frames():
    log = io.StringIO()
    for _ in progress_bar(range(5), file=log, desc="checking images", unit="image", mininterval=0, miniters=1):
        pass
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert lines[0].startswith("checking images:   0%") and "5/5" in lines[-1]
    assert all(line == line.rstrip() and line.startswith("checking images:") for line in lines)


def test_a_file_gets_a_line_only_every_so_often():
    log = io.StringIO()
    for _ in progress_bar(range(100_000), file=log, desc="scoring"):
        pass
    # The first and the last state: a fast loop ends well within LOG_SECONDS.
    assert len(log.getvalue().splitlines()) == 2, log.getvalue()


def test_a_terminal_gets_the_live_bar():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    for _ in progress_bar(range(3), file=screen, desc="indexing", mininterval=0, miniters=1):
        pass
    assert screen.getvalue().count("\r") >= 3  # frames drawn over each other in place
