"""What every entry point shares: TensorFlow's start-up noise hidden from the first line (unless --verbose), flags
checked before any work, and an expected failure (the error tree of captioning.util.errors) told in one line,
`error: <problem and fix>`, with its kind's exit code (2) instead of a traceback.

    from captioning.util import cli
    ...
    if __name__ == "__main__":
        cli.run(main)                                  # absl flags
        sys.exit(cli.run_parsed(main, parser, argv))   # argparse (subcommands): the same errors and exit codes

A script that imports TensorFlow at its top calls cli.quiet_start() before those imports.
"""

import argparse
import difflib
import functools
import os
import sys

from captioning.util import errors
from captioning.util.logging_setup import VERBOSE_ENV, quiet_tensorflow_unless_verbose

USAGE_EXIT_CODE = errors.OUTCOMES[errors.InvalidInput].exit_code
CLOSED_PIPE_EXIT_CODE = 141
VERBOSE_HELP = f"Show TensorFlow's C++ start-up and log lines (also {VERBOSE_ENV}=1)."


class UsageError(errors.InvalidInput):
    """A bad invocation; its message names the problem and the fix."""


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
        ("model_dir", os.path.isdir, "must name an export folder (python train.py writes checkpoints/export)")
    )


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
    return (
        not os.path.isdir(path)
        and os.path.isdir(folder)
        and os.access(folder, os.W_OK)
        and (not os.path.exists(path) or os.access(path, os.W_OK))
    )


def unknown_flag(name: str, known_names) -> str:
    """`unknown flag --txt (did you mean --text?)`: the closest known flag by difflib, when one is close."""
    name = name.lstrip("-").split("=", 1)[0]
    # Names compared without their dashes (shared dashes would make unrelated names look alike), and closer than
    # difflib's default: a suggestion should be what the user meant.
    closest = difflib.get_close_matches(name, [known.lstrip("-") for known in known_names], n=1, cutoff=0.7)
    return f"unknown flag --{name}" + (f" (did you mean --{closest[0]}?)" if closest else "")


def _absl_flag_names() -> list:
    from absl import flags

    return [f"--{name}" for name in flags.FLAGS]


def _flags_parser(known_only: bool):
    def parse(argv):
        from absl import flags

        try:
            return flags.FLAGS(argv, known_only=known_only)
        except flags.UnrecognizedFlagError as error:
            sys.exit(fail(f"{unknown_flag(error.flagname, _absl_flag_names())} (see --helpshort)"))
        except flags.Error as error:
            sys.exit(fail(f"{error} (see --helpshort)"))
        except SystemExit as done:  # absl's --help and --helpfull print the help, then exit with 1: it succeeded
            sys.exit(0 if done.code == 1 else done.code)

    return parse


def unexpected_arguments(arguments) -> str:
    """What is wrong with arguments no flag took: the first unknown flag among them (with the closest real one), or
    words outside any flag."""
    flags_given = [argument for argument in arguments if argument.startswith("-")]
    if flags_given:
        return unknown_flag(flags_given[0], _absl_flag_names())
    return f"unexpected arguments: {' '.join(arguments)} (flags are written --name=value)"


def quiet_on_closed_pipe(main):
    """`main`, ended quietly when its reader stops early (`... | head`): no BrokenPipeError traceback, and exit code
    141 as a shell's own commands give (128 + SIGPIPE). SIGPIPE itself stays ignored, as Python sets it, so that a
    server's closed socket is an error it handles, not the end of the process."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            result = main(*args, **kwargs)
            sys.stdout.flush()  # what is still buffered goes now, while a closed pipe can be handled here
            return result
        except BrokenPipeError:
            # Python flushes stdout once more on the way out: let that write go nowhere.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return CLOSED_PIPE_EXIT_CODE

    return wrapped


def _help_describes(module_name: str) -> None:
    """absl's --help prints the started file's docstring and the flags it defined; a command started through a shim
    (`python train.py`) or an installed wrapper (`captioning-train`) has both in its own module instead."""
    from absl import flags

    if module_name == "__main__":
        return
    sys.modules["__main__"].__doc__ = sys.modules[module_name].__doc__
    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def call(main, *args, expected=()) -> int:
    """main(*args), with an error of the tree (or of a type in `expected`) told in one line and its exit code."""
    try:
        return main(*args)
    except (errors.CaptioningError, *expected) as error:
        code = errors.outcome(error).exit_code if isinstance(error, errors.CaptioningError) else USAGE_EXIT_CODE
        return fail(error, exit_code=code)


def run_parsed(main, parser, argv=None) -> int:
    """The argparse twin of run(): the quiet start-up, parser.parse_args(argv) (one-line errors, exit code 2, with
    cli.ArgumentParser), then main(args) through call()."""
    quiet_start()
    return call(main, parser.parse_args(argv))


def run(main, expected=(), pass_unknown_flags: bool = False) -> None:
    """absl's app.run(main), plus --verbose, flag errors in one line with exit code 2 (an unknown flag named, with the
    closest real one), an error of the tree (or any exception type in `expected`) raised by `main` told in one line
    with its exit code (call()), and a closed output pipe ending the run quietly. With `pass_unknown_flags`, flags
    absl does not know reach `main` in argv[1:] (another library's options), and `main` decides what to do with
    them."""
    from absl import app, flags

    quiet_start()
    if "verbose" not in flags.FLAGS:
        flags.DEFINE_bool("verbose", False, VERBOSE_HELP)
    _help_describes(main.__module__)

    @quiet_on_closed_pipe
    def checked_main(argv):
        if len(argv) > 1 and not pass_unknown_flags:
            return fail(unexpected_arguments(argv[1:]))
        return call(main, argv, expected=expected)

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

    def parse_args(self, args=None, namespace=None):
        """argparse's, but an unknown flag is named on its own with the closest real one (of any subcommand)."""
        namespace, extras = self.parse_known_args(args, namespace)
        flags_given = [argument for argument in extras if argument.startswith("-")]
        if flags_given:
            self.error(unknown_flag(flags_given[0], self._flag_names()))
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace

    def _flag_names(self) -> list:
        names = [name for name in self._option_string_actions if name.startswith("--")]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for parser in action.choices.values():
                    names += [name for name in parser._option_string_actions if name.startswith("--")]
        return sorted(set(names))

    def error(self, message):
        sys.exit(fail(f"{message} (see {self.prog} --help)"))
