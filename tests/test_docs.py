"""The README and the docs pages: every command line in their shell code blocks runs a real program of this
repository (or a named outside tool) with flags that program has; the README stays a newcomer's page; every page
is in the site's navigation. (The site itself is built, broken links failing it, by .ci/run.)

The programs' flags are read in one child process that runs each program up to the moment it parses its
arguments (absl's app.run, argparse's parse_args) and checks the command's flags against what it defined, so a
stale or misspelled flag fails here.
Run as a script, this file is that child: it reads the commands as JSON on stdin and prints the problems.
"""

import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import re
import runpy
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from absl import app, flags
from absl import logging as _absl_logging  # noqa: F401 (its flags are every absl program's)
from markdown.extensions.toc import slugify  # the anchors MkDocs gives headings

from tests.helpers import CHILD_TIMEOUT

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
PYTHON = ".venv/bin/python"
SHELL_FENCES = {"sh", "bash", "shell"}
# Programs from outside the project that the docs run as written (their flags are theirs to check).
OUTSIDE_PROGRAMS = {"curl", "docker", "export", "cd"}
OPERATORS = {"&&", "||", "|", ";", "&"}


def doc_files() -> list:
    return [README, *sorted(DOCS.glob("*.md"))]


def shell_lines(path: Path) -> list:
    """(line number, command line) of every shell code block, continuation lines joined."""
    lines, found, fence, joined, start = path.read_text().splitlines(), [], None, "", 0
    for number, line in enumerate(lines, start=1):
        opening = re.match(r"^(```+|~~~+)\s*(\w*)", line)
        if fence is None:
            if opening:
                fence = (opening.group(1), opening.group(2).lower())
            continue
        if line.startswith(fence[0]):
            fence = None
            continue
        if fence[1] not in SHELL_FENCES:
            continue
        joined, start = (joined + " " if joined else "") + line.rstrip().removesuffix("\\"), start or number
        if not line.rstrip().endswith("\\"):
            if joined.strip():
                found.append((start, joined.strip()))
            joined, start = "", 0
    return found


def split_commands(line: str) -> list:
    """The simple commands of a line (split at &&, |, ; ...), comments and leading VAR=value dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split, lexer.commenters = True, "#"
    commands, current = [], []
    for token in lexer:
        if token in OPERATORS:
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    found = []
    for tokens in commands:
        while tokens and re.match(r"^[A-Za-z_]\w*=", tokens[0]):
            tokens = tokens[1:]
        if tokens:
            found.append(tokens)
    return found


def installed_commands() -> dict:
    """The commands `pip install` puts into the environment: name -> "module:function" (pyproject.toml)."""
    pyproject = REPO / "pyproject.toml"
    if not pyproject.exists():
        return {}
    return tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {})


def module_file(name: str):
    """The repository file `python -m name` runs, or None when the module is not the project's."""
    base = REPO.joinpath(*name.split("."))
    for candidate in (base / "__main__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def resolve(tokens: list):
    """(problem, None) or (None, program): program None for an outside tool, else (target, args) where target is
    a repository file of Python to check the flags of, a shell script's path, or an installed command's
    "module:function"."""
    program, rest = tokens[0], tokens[1:]
    if program == PYTHON:
        if len(rest) >= 2 and rest[0] == "-m":
            path = module_file(rest[1])
            if path is None:
                found = importlib.util.find_spec(rest[1].split(".")[0]) is not None
                return (None, None) if found else (f"no module {rest[1]} in the project or the environment", None)
            return None, (path, rest[2:])
        if rest and rest[0].endswith(".py"):
            path = REPO / rest[0]
            return (None, (path, rest[1:])) if path.is_file() else (f"no script {rest[0]}", None)
        return f"{PYTHON} runs neither -m MODULE nor a script: {' '.join(tokens)}", None
    if program == "bash" and rest:
        program, rest = rest[0], rest[1:]
    if program.startswith("scripts/") and program.endswith(".sh"):
        path = REPO / program
        return (None, (path, rest)) if path.is_file() else (f"no script {program}", None)
    commands = installed_commands()
    if program in commands:
        return f"runs {program} from the PATH: write .venv/bin/{program} (it works without activating)", None
    if program.startswith(".venv/bin/") and Path(program).name in commands:
        return None, (commands[Path(program).name], rest)
    if program.startswith(".venv/bin/"):  # a tool installed into the environment (mkdocs, tensorboard)
        found = (Path(sys.executable).parent / Path(program).name).exists()
        return (None, None) if found else (f"no {program} in the environment", None)
    if program in OUTSIDE_PROGRAMS:
        return None, None
    return f"runs {program!r}: write {PYTHON} ... (a bare python has none of the packages) or a repo script", None


def long_flags(args: list) -> list:
    return [arg[2:].split("=")[0] for arg in args if arg.startswith("--") and len(arg) > 2]


def check_commands(commands: list) -> list:
    """Problems of (where, tokens) commands: programs checked here, Python programs' flags in one child."""
    problems, to_probe = [], []
    for where, tokens in commands:
        problem, program = resolve(tokens)
        if problem:
            problems.append(f"{where}: {problem}")
        elif program and isinstance(program[0], str):
            to_probe.append({"where": where, "entry": program[0], "args": program[1]})
        elif program and program[0].suffix == ".sh":
            source = program[0].read_text()
            problems += [
                f"{where}: {program[0].name} has no flag --{name}"
                for name in long_flags(program[1])
                if f"--{name}" not in source
            ]
        elif program:
            to_probe.append({"where": where, "file": str(program[0]), "args": program[1]})
    if to_probe:
        child = subprocess.run(
            [sys.executable, __file__],
            input=json.dumps(to_probe),
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=CHILD_TIMEOUT,
            check=False,
        )
        assert child.returncode == 0, child.stderr[-3000:]
        problems += json.loads(child.stdout.splitlines()[-1])
    return problems


def doc_commands() -> list:
    return [
        (f"{path.relative_to(REPO)}:{number}", tokens)
        for path in doc_files()
        for number, line in shell_lines(path)
        for tokens in split_commands(line)
    ]


# --- the child: run each program up to its argument parsing, check its flags -------------------------------


class _CaughtParser(Exception):
    def __init__(self, parser):
        super().__init__()
        self.parser = parser


def _start(item: dict):
    """(name, a function that runs the item's program as its command line would)."""
    if "entry" in item:
        module, function = item["entry"].split(":")
        return item["entry"], lambda: getattr(importlib.import_module(module), function)()
    path = Path(item["file"])
    relative = path.relative_to(REPO).with_suffix("")
    if (REPO / relative.parts[0] / "__init__.py").exists():  # a package's module: as python -m runs it
        name = ".".join(relative.parts).removesuffix(".__main__")
        return str(relative) + ".py", lambda: runpy.run_module(name, run_name="__main__")
    return str(relative) + ".py", lambda: runpy.run_path(str(path), run_name="__main__")


def _program_parser(start):
    """Runs `start` up to the moment the program parses its arguments: then its absl flags are all defined
    (None is returned: read flags.FLAGS), or its argparse parser is built (returned). Nothing after that runs."""

    def catch(parser=None, *args, **kwargs):
        raise _CaughtParser(parser if isinstance(parser, argparse.ArgumentParser) else None)

    saved = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args, app.run, sys.argv
    argparse.ArgumentParser.parse_args = argparse.ArgumentParser.parse_known_args = app.run = catch
    sys.argv = ["program"]
    try:
        start()
    except _CaughtParser as caught:
        return caught.parser
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args, app.run, sys.argv = saved
    raise AssertionError("the program ended without parsing its arguments")


def _option_strings(parser) -> set:
    """Every option string of `parser` and its subcommands' parsers."""
    found = set()
    for action in parser._actions:
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                found |= _option_strings(subparser)
    return found


def _argparse_problems(parser, args: list) -> list:
    """What argparse says of the arguments, and any flag written other than in full (argparse takes an
    abbreviation, which a new flag can make ambiguous)."""
    options = _option_strings(parser)
    problems = [f"--{name} is not a flag's full name" for name in long_flags(args) if f"--{name}" not in options]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parser.parse_args(args)
    except SystemExit as exit:
        if exit.code:
            problems.append(stderr.getvalue().strip().splitlines()[-1])
    return problems


def _beam_problems(args: list) -> list:
    """Flags absl does not know pass through to Beam (get_similarity_score.py --runner): Beam must know them."""
    # Beam takes seconds to import: only for a command that runs it.
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(args)
    unknown = set(options.get_all_options(retain_unknown_options=True)) - set(options.get_all_options())
    return [f"neither the program nor Beam has --{name}" for name in sorted(unknown)]


def _absl_problems(args: list) -> list:
    known, problems, passed = flags.FLAGS, [], []
    position = 0
    while position < len(args):
        arg = args[position]
        position += 1
        if not arg.startswith("--") or arg == "--":
            problems.append(f"unexpected argument {arg!r} (the entry points take flags only)")
            continue
        name, has_value, value = arg[2:].partition("=")
        if name not in known and name.startswith("no") and name[2:] in known and known[name[2:]].boolean:
            continue
        if name not in known:
            passed.append(arg)
            position += not has_value and position < len(args) and not args[position].startswith("--")
            continue
        flag = known[name]
        if not has_value and not flag.boolean:
            value = args[position] if position < len(args) else ""
            position += 1
        if has_value or not flag.boolean:
            try:
                flag.parser.parse(value)
            except (ValueError, TypeError) as error:
                problems.append(f"--{name} {value!r}: {error}")
    if passed and "runner" in known and any(arg.startswith("--runner") for arg in args):
        return problems + _beam_problems(passed)
    return problems + [f"no flag {arg.split('=')[0]}" for arg in passed]


def _forget_program(baseline: set) -> None:
    """Undefines the flags defined since `baseline` and unloads the project's modules, so that the next
    program's import defines its flags afresh. Modules that register Keras classes stay (Keras refuses a second
    registration); they define no flags."""
    for name in set(flags.FLAGS) - baseline:
        delattr(flags.FLAGS, name)
    for name, module in list(sys.modules.items()):
        file = Path(getattr(module, "__file__", None) or "/")
        if (
            file.suffix != ".py"
            or not file.is_relative_to(REPO)
            or file.is_relative_to(REPO / ".venv")
            or "register_keras_serializable" in file.read_text()
        ):
            continue
        del sys.modules[name]
        parent, _, child = name.rpartition(".")
        if parent in sys.modules and getattr(sys.modules[parent], child, None) is module:
            delattr(sys.modules[parent], child)


def probe(items: list) -> list:
    app.define_help_flags()
    flags.DEFINE_bool("verbose", False, "captioning.util.cli.run defines it for every entry point")
    baseline = set(flags.FLAGS)
    problems, by_program = [], {}
    for item in items:
        by_program.setdefault(item.get("entry") or item["file"], []).append(item)
    for program_items in by_program.values():
        name, start = _start(program_items[0])
        try:
            parser = _program_parser(start)
        except Exception as error:  # a program that cannot even be started is a finding, not a crash
            problems += [f"{item['where']}: cannot start {name}: {error!r}" for item in program_items]
            continue
        for item in program_items:
            found = _argparse_problems(parser, item["args"]) if parser else _absl_problems(item["args"])
            problems += [f"{item['where']}: {name}: {problem}" for problem in found]
        _forget_program(baseline)
    return problems


# --- the tests ------------------------------------------------------------------------------------------------

PLANTED = [  # each must be reported: the check can fail
    ".venv/bin/python train.py --epochs 1 --no_such_flag 3",
    ".venv/bin/python get_similarity_score.py --image_path a.png --txt a",
    ".venv/bin/python get_similarity_score.py --csv a.csv --output b.csv --runner DirectRunner --no_such_option=1",
    ".venv/bin/python -m captioning.search search --index_dir index --no_such_flag 1 query",
    ".venv/bin/python -m captioning.evaluate --dataset no_such_format",
    ".venv/bin/python scripts/benchmark_serving.py --model_base_pat checkpoints/export",  # flags under __main__
    ".venv/bin/python scripts/soak_search.py --clients 8 --second 60",  # argparse in main(); abbreviated
    ".venv/bin/python train.py --output_dir runs/coco ...",  # a placeholder is passed as an argument
    "python train.py",
    ".venv/bin/python no_such_script.py",
    "bash scripts/setup.sh --no_such_flag",
]


@pytest.fixture(scope="module")
def problems():
    """Problems of the docs' commands and of the planted ones, found in one child process."""
    planted = [(f"planted {n}", tokens) for n, line in enumerate(PLANTED) for tokens in split_commands(line)]
    found = check_commands(doc_commands() + planted)
    return (
        [p for p in found if not p.startswith("planted")],
        {int(p.split(":")[0].split()[1]) for p in found if p.startswith("planted")},
    )


def test_the_commands_are_found():
    commands = [" ".join(tokens) for _, tokens in doc_commands()]
    assert len(commands) > 60
    assert "bash scripts/quickstart.sh" in commands
    assert ".venv/bin/python -m pytest -q" in commands
    assert all(not tokens[0].startswith("#") for _, tokens in doc_commands())


def test_every_command_runs_a_real_program_with_real_flags(problems):
    assert problems[0] == [], "\n".join(problems[0])


def test_a_wrong_program_or_flag_is_reported(problems):
    assert problems[1] == set(range(len(PLANTED)))


def test_the_training_flags_table_names_every_flag_of_train_py_and_no_other():
    """docs/training.md's tables (rows whose first cell names flags) against `train.py --helpfull`: a flag added to
    the code, or one renamed or removed from it, fails here until the table says so."""
    helpfull = subprocess.run(
        [sys.executable, "train.py", "--helpfull"], cwd=REPO, capture_output=True, text=True, timeout=CHILD_TIMEOUT
    ).stdout
    real, project, section = set(), set(), ""
    for line in helpfull.splitlines():
        if re.fullmatch(r"\S+:", line):
            section = line
        elif found := re.match(r"  --(?:\[no\])?(\w+):", line):
            real.add(found[1])
            if section.startswith("captioning."):
                project.add(found[1])
    documented = {
        name
        for line in (DOCS / "training.md").read_text().splitlines()
        if line.startswith("| `--")
        for name in re.findall(r"`--(\w+)`", line.split("|")[1])
    }
    assert len(project) > 40 and "hard_negatives_every" in project  # the help was read
    assert documented - real == set(), "documented but not a flag of train.py"
    assert project - documented == set(), "flags of train.py missing from docs/training.md's tables"


def test_readme_starts_with_the_two_set_up_commands():
    first = shell_lines(README)[:2]
    assert [line.split("#")[0].strip() for _, line in first] == [
        "bash scripts/quickstart.sh",
        "bash scripts/setup.sh --dev && .venv/bin/python -m pytest -q",
    ]


def test_readme_is_a_newcomers_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines: move the detail to a page under docs/"


def heading_anchors(path: Path) -> set:
    """The anchors MkDocs (and GitHub) give the page's headings."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", path.read_text(), flags=re.S), flags=re.M)
    return {slugify(heading.replace("`", ""), "-").lower() for heading in headings}


def test_readme_links_reach_pages_and_headings():
    """The site's build checks the pages' links; the README is not among its pages, so its links are checked here."""
    links = re.findall(r"\]\(([^)#]+\.md)(?:#([^)]+))?\)", README.read_text())
    assert links
    for target, anchor in links:
        assert (REPO / target).is_file(), f"README.md links to a missing {target}"
        assert not anchor or anchor in heading_anchors(REPO / target), f"{target} has no heading #{anchor}"


def test_every_docs_page_is_in_the_site_nav():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())

    def pages(nav):
        for entry in nav:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            yield from pages(value) if isinstance(value, list) else [value]

    assert sorted(pages(config["nav"])) == sorted(path.name for path in DOCS.glob("*.md"))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    print(json.dumps(probe(json.load(sys.stdin))))
