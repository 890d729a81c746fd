"""One error tree: every exception class of the project belongs to one kind, and each kind's exit code is what a
command line returns for it."""

import json
import os
import subprocess
import sys

import pytest

from captioning.util import cli, errors
from tests.helpers import CHILD_TIMEOUT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Imports every module of captioning/ and serving/ (not the entry points, whose flags would collide) and prints
# {class: [the kinds of the tree it derives from]} for every exception class they define.
CLASSES = """
import importlib, json, pkgutil
import captioning, serving
from captioning.util import errors

found = {}
for package in (captioning, serving):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name.endswith("__main__") or info.name == "serving.server":
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == info.name:
                kinds = [kind.__name__ for kind in errors.OUTCOMES if issubclass(value, kind)]
                found[f"{info.name}.{name}"] = [kinds, issubclass(value, errors.CaptioningError)]
print(json.dumps(found))
"""


def test_every_exception_class_belongs_to_one_kind():
    result = subprocess.run(
        [sys.executable, "-c", CLASSES], cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(found) >= 20  # the walk reached the whole package
    # ServingError carries TF Serving's own status code instead of a kind.
    assert found.pop("serving.status.ServingError") == [[], True]
    wrong = {
        name: kinds
        for name, (kinds, in_tree) in found.items()
        if name.startswith("captioning.util.errors.")
        and not in_tree
        or not name.startswith("captioning.util.errors.")
        and len(kinds) != 1
    }
    assert not wrong, wrong


def test_user_errors_stay_builtin_errors_where_callers_catch_those():
    from captioning.inference.local import ModelNotFoundError
    from captioning.inference.runners import InvalidInputError, MissingSignatureError

    assert issubclass(InvalidInputError, ValueError) and issubclass(ModelNotFoundError, FileNotFoundError)
    assert issubclass(MissingSignatureError, LookupError) and issubclass(cli.UsageError, errors.InvalidInput)


@pytest.mark.parametrize("kind", list(errors.OUTCOMES))
def test_a_command_line_tells_an_error_of_the_tree_in_one_line_with_its_kinds_exit_code(kind, capsys):
    def main():
        raise kind("the problem\nand a second line nobody reads")

    assert cli.call(main) == errors.OUTCOMES[kind].exit_code
    assert capsys.readouterr().err == "error: the problem\n"


def test_a_bug_is_not_a_user_error():
    def main():
        raise ValueError("a builtin error is a bug")

    assert errors.outcome(ValueError()) == errors.UNEXPECTED
    with pytest.raises(ValueError):  # a traceback: no one-line `error:` hides it
        cli.call(main)
    assert errors.client_message(KeyError("secret")) == errors.UNEXPECTED_MESSAGE


def test_the_table_maps_every_kind_to_its_statuses():
    import grpc

    assert {
        kind.__name__: (row.exit_code, row.http_status, row.grpc_code) for kind, row in errors.OUTCOMES.items()
    } == {
        "InvalidInput": (2, 400, "INVALID_ARGUMENT"),
        "NotFound": (2, 404, "NOT_FOUND"),
        "Conflict": (2, 409, "FAILED_PRECONDITION"),
        "Unavailable": (2, 503, "UNAVAILABLE"),
        "OverLimit": (2, 413, "RESOURCE_EXHAUSTED"),
        "Unsupported": (2, 501, "UNIMPLEMENTED"),
    }
    for row in (*errors.OUTCOMES.values(), errors.UNEXPECTED):
        assert grpc.StatusCode[row.grpc_code]  # a real code name
