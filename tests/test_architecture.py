"""The package's floors (docs/architecture.md): captioning never imports serving, every import points down the
floors, and no modules import each other in a circle. Read from the source with ast, imports inside functions
included."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A folder may import its own modules and those of lower floors only; folders on one floor are independent.
FLOORS = {"util": 0, "data": 1, "model": 2, "export": 3, "training": 4, "inference": 4,
          "jobs": 5, "evaluate": 5, "search": 5, "commands": 6}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: pathlib.Path) -> set:
    """Every module named by an import in the file (for `from a import b`: a.b when that is a module, else a)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
            found.add(node.module)
    return found


def package_graph() -> dict:
    modules = {module_name(path): path for path in ROOT.glob("captioning/**/*.py")}
    return {name: {imported for imported in imports_of(path) if imported in modules and imported != name}
            for name, path in modules.items()}


def test_captioning_never_imports_serving():
    offenders = sorted(f"{path.relative_to(ROOT)} imports {name}"
                       for path in ROOT.glob("captioning/**/*.py")
                       for name in imports_of(path) if name == "serving" or name.startswith("serving."))
    assert not offenders, offenders


def test_every_import_points_down_the_floors():
    def floor_of(module):
        parts = module.split(".")
        return parts[1] if len(parts) > 2 else None  # captioning.<floor>.<module>; the package root has none

    upward = []
    for module, imported in package_graph().items():
        for target in imported:
            here, there = floor_of(module), floor_of(target)
            if here is None or there is None or here == there:
                continue
            assert here in FLOORS and there in FLOORS, f"{module} or {target} is in no floor of FLOORS"
            if FLOORS[there] >= FLOORS[here]:
                upward.append(f"{module} -> {target}")
    assert not upward, upward


def test_no_import_circle():
    graph = package_graph()
    state, circles = {}, []

    def visit(module, trail):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, circles


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
        try:
            check()
        except AssertionError:
            continue
        raise AssertionError(f"{check.__name__} missed the planted fault")
