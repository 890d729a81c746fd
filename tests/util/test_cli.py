"""What every entry point shares: an unknown flag named with the closest real one, --help as a success, and a
closed output pipe ending a command quietly."""

import os
import subprocess
import sys
import textwrap

import pytest

from captioning.util import cli
from tests.helpers import CHILD_TIMEOUT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize(
    "given, expected",
    [
        ("--txt", "unknown flag --txt (did you mean --text?)"),
        ("txt", "unknown flag --txt (did you mean --text?)"),  # absl names the flag without its dashes
        ("--txt=a cat", "unknown flag --txt (did you mean --text?)"),
        ("--image_pth", "unknown flag --image_pth (did you mean --image_path?)"),
        ("--frobnicate", "unknown flag --frobnicate"),  # nothing close: no guess
    ],
)
def test_an_unknown_flag_is_named_with_the_closest_real_one(given, expected):
    assert cli.unknown_flag(given, ["--text", "--image_path", "--model_dir", "--help"]) == expected


def parser():
    parser = cli.ArgumentParser(prog="tool")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list").add_argument("--index_dir")
    return parser


def test_argparse_names_an_unknown_flag_of_a_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["list", "--index_dr", "x"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: unknown flag --index_dr (did you mean --index_dir?) (see tool --help)\n"


def test_argparse_still_names_stray_words(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["list", "stray"])
    assert capsys.readouterr().err == "error: unrecognized arguments: stray (see tool --help)\n"


def run_python(code: str, *arguments, **kwargs):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *arguments], cwd=ROOT, text=True, timeout=CHILD_TIMEOUT, **kwargs
    )


def test_a_closed_pipe_ends_the_command_quietly():
    """The reader is gone before the command writes (as `| head` does once it has its lines)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = run_python(
            """
            from captioning.util import cli
            cli.run(lambda argv: print("a line\\n" * 100_000))
        """,
            stdout=write_end,
            stderr=subprocess.PIPE,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""  # no BrokenPipeError, no "Exception ignored" at exit
    assert result.returncode == cli.CLOSED_PIPE_EXIT_CODE


def test_absl_help_is_a_success():
    """absl exits with 1 after printing the help; a user asked for it and got it."""
    result = run_python(
        """
        from absl import flags
        from captioning.util import cli
        flags.DEFINE_string("text", None, "The caption to score.")
        cli.run(lambda argv: 3)
    """,
        "--help",
        capture_output=True,
    )
    assert result.returncode == 0, result.stderr
    assert "The caption to score." in result.stdout
