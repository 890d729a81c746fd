"""The floors of both packages (docs/architecture.md): captioning never imports serving, every import points down the
floors (captioning's folders, serving's modules), and no modules import each other in a circle. Read from the source
with ast, imports inside functions and relative imports included."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A folder may import its own modules and those of lower floors only; folders on one floor are independent.
FLOORS = {
    "util": 0,
    "data": 1,
    "model": 2,
    "export": 3,
    "training": 4,
    "inference": 4,
    "jobs": 5,
    "evaluate": 5,
    "search": 5,
    "api": 5,
    "commands": 6,
}
# serving's floors, by module (web/ is one folder: its modules may import each other). serving may import any of
# captioning.
SERVING_FLOORS = {
    "status": 0,
    "limits": 1,
    "json_tensors": 1,
    "batching": 1,
    "servable": 1,
    "predictor": 2,
    "model_registry": 2,
    "grpc_services": 3,
    "rest_api": 3,
    "web": 4,
    "server": 5,
}
PACKAGES = ("captioning", "serving")


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: pathlib.Path) -> set:
    """Every module named by an import in the file (for `from a import b`: a.b when that is a module, else a);
    a relative import is resolved against the file's package."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.update(f"{module}.{alias.name}" for alias in node.names)
            found.add(module)
    return found


def package_graph() -> dict:
    modules = {module_name(path): path for package in PACKAGES for path in ROOT.glob(f"{package}/**/*.py")}
    return {
        name: {imported for imported in imports_of(path) if imported in modules and imported != name}
        for name, path in modules.items()
    }


def test_captioning_never_imports_serving():
    offenders = sorted(
        f"{path.relative_to(ROOT)} imports {name}"
        for path in ROOT.glob("captioning/**/*.py")
        for name in imports_of(path)
        if name == "serving" or name.startswith("serving.")
    )
    assert not offenders, offenders


def floor_of(module):
    """(package, floor name): captioning.<floor>.<module>, serving.<module> or serving.web.<module>; the roots have
    none."""
    parts = module.split(".")
    if parts[0] == "captioning":
        return parts[0], (parts[1] if len(parts) > 2 else None)
    return parts[0], (parts[1] if len(parts) > 1 else None)


def test_every_import_points_down_the_floors():
    upward = []
    for module, imported in package_graph().items():
        for target in imported:
            (package, here), (target_package, there) = floor_of(module), floor_of(target)
            if package != target_package or here is None or there is None or here == there:
                continue  # serving on captioning is down by definition; captioning on serving is tested above
            floors = FLOORS if package == "captioning" else SERVING_FLOORS
            assert here in floors and there in floors, f"{module} or {target} is in no floor of {package}"
            if floors[there] >= floors[here]:
                upward.append(f"{module} -> {target}")
    assert not upward, upward


def test_no_import_circle():
    graph = package_graph()
    state, circles = {}, []

    def visit(module, trail):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join(trail[trail.index(target) :] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, circles


def _missed(check) -> bool:
    try:
        check()
    except AssertionError:
        return False
    return True


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path, monkeypatch):
    """The checks above can fail: a planted circle and an upward import are found."""
    package = tmp_path / "captioning"
    (package / "data").mkdir(parents=True)
    (package / "model").mkdir()
    (package / "data" / "a.py").write_text("from captioning.model import b\n")
    (package / "model" / "b.py").write_text("def f():\n    from captioning.data import a\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    graph = package_graph()
    assert graph == {"captioning.data.a": {"captioning.model.b"}, "captioning.model.b": {"captioning.data.a"}}
    for check in (test_no_import_circle, test_every_import_points_down_the_floors):
        assert not _missed(check), f"{check.__name__} missed the planted fault"


def test_the_checks_see_relative_imports_up_serving_and_into_serving(tmp_path, monkeypatch):
    """A relative import up serving's floors, and captioning importing serving, are found."""
    (tmp_path / "serving" / "web").mkdir(parents=True)
    (tmp_path / "captioning" / "util").mkdir(parents=True)
    (tmp_path / "serving" / "status.py").write_text("def f():\n    from .web import app\n")
    (tmp_path / "serving" / "web" / "app.py").write_text("from ..status import f\nfrom . import guards\n")
    (tmp_path / "serving" / "web" / "guards.py").write_text("")
    (tmp_path / "captioning" / "util" / "cli.py").write_text("from serving import status\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    graph = package_graph()
    assert graph["serving.status"] == {"serving.web.app"}
    assert graph["serving.web.app"] == {"serving.status", "serving.web.guards"}
    for check in (
        test_every_import_points_down_the_floors,
        test_no_import_circle,
        test_captioning_never_imports_serving,
    ):
        assert not _missed(check), f"{check.__name__} missed the planted fault"


# Search and the server's web API call the model's signatures only through captioning/search/search_model.py.
SIGNATURE_CALLERS = {"captioning.inference.rows", "captioning.inference.batch", "captioning.inference.captions"}


def signature_calls(path: pathlib.Path) -> list:
    """Imports of the signature-calling helpers, and `.run("<signature>", ...)` calls, in one file."""
    found = sorted(name for name in imports_of(path) if name in SIGNATURE_CALLERS)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "run"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(f'run("{node.args[0].value}")')
    return found


def test_search_calls_signatures_only_through_search_model():
    files = [*ROOT.glob("captioning/search/*.py"), *ROOT.glob("serving/web/*.py")]
    offenders = {
        str(path.relative_to(ROOT)): calls
        for path in files
        if path.name != "search_model.py"
        if (calls := signature_calls(path))
    }
    assert not offenders, offenders


def test_the_check_sees_a_signature_called_outside_search_model(tmp_path, monkeypatch):
    planted = tmp_path / "serving" / "web" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text(
        "from captioning.inference.rows import run_in_batches\ndef f(model):\n    return model.run('embed_text', {})\n"
    )
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    assert not _missed(test_search_calls_signatures_only_through_search_model)
    assert signature_calls(planted) == ["captioning.inference.rows", 'run("embed_text")']
