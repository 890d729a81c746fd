"""What every entry point shares: TensorFlow's start-up noise hidden from the first line (unless --verbose), flags
checked before any work, and an expected failure told in one line, `error: <problem and fix>`, with exit code 2
(bad usage) instead of a traceback.

    from captioning.util import cli
    ...
    if __name__ == "__main__":
        cli.run(main)               # absl entry points; argparse ones use cli.ArgumentParser and cli.quiet_start()

A script that imports TensorFlow at its top calls cli.quiet_start() before those imports.
"""

import argparse
import os
import sys

from captioning.util.logging_setup import VERBOSE_ENV, quiet_tensorflow_unless_verbose

USAGE_EXIT_CODE = 2
VERBOSE_HELP = f"Show TensorFlow's C++ start-up and log lines (also {VERBOSE_ENV}=1)."


class UsageError(Exception):
    """A bad invocation or an expected failure; its message names the problem and the fix."""


def fail(message, exit_code: int = USAGE_EXIT_CODE) -> int:
    """Prints `error: message` (its first line) on stderr and returns `exit_code`, for `return cli.fail(...)`."""
    lines = str(message).strip().splitlines() or ["failed"]
    print(f"error: {lines[0]}", file=sys.stderr)
    return exit_code


def quiet_start() -> None:
    """Hides TensorFlow's start-up lines unless --verbose or CAPTIONING_VERBOSE=1; call before TF is imported."""
    quiet_tensorflow_unless_verbose()


def define_flag_validators(*validators) -> None:
    """(flag name, check, message) triples as absl validators: a failing check ends the run at flag parsing, in one
    line, before anything heavy is imported. `check` gets the flag's value; None (not given) always passes."""
    from absl import flags

    for name, check, message in validators:
        flags.register_validator(name, lambda value, check=check: value is None or check(value), message=message)


def define_model_dir_flag() -> None:
    """--model_dir, a trained model's export folder, checked at flag parsing: for the tools that read one."""
    from absl import flags

    flags.DEFINE_string("model_dir", "checkpoints/export", "Export base directory or one version directory.")
    define_flag_validators(
        ("model_dir", os.path.isdir, "must name an export folder (python train.py writes checkpoints/export)"))


def define_scene_flags(seed: int) -> None:
    """--seed and --image_size of a tool that draws synthetic scenes for a trained model to score."""
    from absl import flags

    flags.DEFINE_integer("seed", seed, "Scene seed (training uses 0 by default).")
    flags.DEFINE_integer("image_size", 64, "Image side in pixels (the model's).")
    define_flag_validators(("image_size", lambda value: value >= 1, "must be at least 1"))


def can_write_file(path: str) -> bool:
    """Whether `path` can be written as a file: not a folder, in a folder that exists and is writable. For checking
    an output flag before the work that ends in writing it."""
    folder = os.path.dirname(os.path.abspath(path))
    return not os.path.isdir(path) and os.path.isdir(folder) and os.access(folder, os.W_OK) and (
        not os.path.exists(path) or os.access(path, os.W_OK))


def _flags_parser(known_only: bool):
    def parse(argv):
        from absl import flags

        try:
            return flags.FLAGS(argv, known_only=known_only)
        except flags.Error as error:
            sys.exit(fail(f"{error} (see --helpshort)"))

    return parse


def unexpected_arguments(arguments) -> str:
    return f"unexpected arguments: {' '.join(arguments)} (flags are written --name=value)"


def run(main, expected=(), pass_unknown_flags: bool = False) -> None:
    """absl's app.run(main), plus --verbose, flag errors in one line with exit code 2, and UsageError (or any
    exception type in `expected`) raised by `main` turned into one line with exit code 2. With
    `pass_unknown_flags`, flags absl does not know reach `main` in argv[1:] (another library's options), and
    `main` decides what to do with them."""
    from absl import app, flags

    quiet_start()
    if "verbose" not in flags.FLAGS:
        flags.DEFINE_bool("verbose", False, VERBOSE_HELP)

    def checked_main(argv):
        if len(argv) > 1 and not pass_unknown_flags:
            return fail(unexpected_arguments(argv[1:]))
        try:
            return main(argv)
        except (UsageError, *expected) as error:
            return fail(error)

    app.run(checked_main, flags_parser=_flags_parser(known_only=pass_unknown_flags))


def at_least_one(text: str) -> int:
    """An argparse `type`: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints its usage too) and --verbose on every (sub)command."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.add_help:  # parents built with add_help=False are merged into parsers that already have it
            self.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)

    def error(self, message):
        sys.exit(fail(f"{message} (see {self.prog} --help)"))
