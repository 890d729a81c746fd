"""The package as pip installs it (pyproject.toml): its packages, the files it reads at run time, and its five
commands, each the same program as the file users run from a clone, answering --help with exit code 0."""

import os
import subprocess
import sys
import tomllib

import pytest
from setuptools import find_packages

from tests.helpers import CHILD_TIMEOUT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "pyproject.toml"), "rb") as file:
    PYPROJECT = tomllib.load(file)
SCRIPTS = PYPROJECT["project"]["scripts"]
# Each command and what a clone runs for the same program; a word of its --help.
COMMANDS = {
    "captioning-train": (["train.py"], "--epochs"),
    "captioning-score": (["get_similarity_score.py"], "--text"),
    "captioning-serve": (["-m", "serving.server"], "--model_base_path"),
    "captioning-search": (["-m", "captioning.search"], "{add,search,list,count"),
    "captioning-evaluate": (["-m", "captioning.evaluate"], "--retrieval_images"),
}


def run(arguments):
    return subprocess.run(arguments, cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT)


def test_the_five_commands_are_declared():
    assert set(SCRIPTS) == set(COMMANDS)


def test_the_packages_are_the_library_and_the_server_without_tests_or_scripts():
    found = set(find_packages(ROOT, include=PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]))
    assert {"captioning", "captioning.commands", "captioning.search", "serving", "serving.web"} <= found
    assert not {name for name in found if name.split(".")[0] not in ("captioning", "serving")}


def test_the_files_read_at_run_time_are_package_data():
    """Every file under the packages that is not Python is either declared package data or documentation."""
    import fnmatch

    declared = PYPROJECT["tool"]["setuptools"]["package-data"]
    for package in ("captioning", "serving"):
        for folder, _, names in os.walk(os.path.join(ROOT, package)):
            for name in names:
                relative = os.path.relpath(os.path.join(folder, name), os.path.join(ROOT, package))
                if name.endswith((".py", ".pyc", ".md")):
                    continue
                assert any(fnmatch.fnmatch(relative, pattern) for pattern in declared.get(package, ())), relative


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_is_the_clone_s_program_and_answers_help(command):
    module, function = SCRIPTS[command].split(":")
    # What the installed wrapper does: import the target and call it, with the command's name as argv[0].
    installed = run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.argv[0] = {command!r}; from {module} import {function}; sys.exit({function}())",
            "--help",
        ]
    )
    clone_arguments, flag = COMMANDS[command]
    clone = run([sys.executable, *clone_arguments, "--help"])
    for result in (installed, clone):
        assert result.returncode == 0, result.stderr[-2000:]
        assert flag in result.stdout
    # The same program: the same flags (absl: "  --name: ...", argparse: "  --name ..."), under its own name.
    assert flags_listed(installed.stdout) == flags_listed(clone.stdout)
    assert command in installed.stdout


def flags_listed(help_text: str) -> set:
    return {line.split()[0].rstrip(":,") for line in help_text.splitlines() if line.lstrip().startswith("--")}


def test_installed_commands_answer_help():
    """After scripts/setup.sh (pip install -e .), the commands are beside the interpreter."""
    bin_dir = os.path.dirname(sys.executable)
    installed = [name for name in COMMANDS if os.path.exists(os.path.join(bin_dir, name))]
    if not installed:
        pytest.skip(f"no captioning-* command in {bin_dir}: bash scripts/setup.sh installs them (pip install -e .)")
    assert installed == list(COMMANDS), f"only {installed} are installed: run pip install -e . again"
    for name in installed:
        result = run([os.path.join(bin_dir, name), "--help"])
        assert result.returncode == 0 and COMMANDS[name][1] in result.stdout, result.stderr[-2000:]
