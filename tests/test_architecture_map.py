"""docs/architecture.md's map ("What each folder holds") matches the tree: every folder of captioning/ and serving/
has its line, every module is named in its folder's line, and every name a line gives (in backquotes) is one of
that folder's modules or something one of them defines."""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def map_lines() -> dict:
    """{folder relative to the repository: its line's text} from the map's bullets ("- `search/`: ...")."""
    with open(os.path.join(ROOT, "docs", "architecture.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("### What each folder holds", 1)[1].split("\n#", 1)[0]
    lines = {}
    for bullet in re.split(r"\n- ", "\n" + section)[1:]:
        folder = re.match(r"`([\w/]+/)`:", bullet)
        if folder:
            name = folder.group(1).rstrip("/")
            lines[name if name.startswith("serving") else f"captioning/{name}"] = bullet
    return lines


def packages() -> list:
    found = []
    for top in ("captioning", "serving"):
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            if "__init__.py" in files and folder != os.path.join(ROOT, "captioning"):
                found.append(os.path.relpath(folder, ROOT))
    return sorted(found)


def modules(folder: str) -> list:
    return sorted(
        name[:-3] for name in os.listdir(os.path.join(ROOT, folder)) if name.endswith(".py") and name != "__init__.py"
    )


def defined_names(folder: str) -> set:
    """What the folder's modules define at their top level (functions, classes, constants) and in their classes
    (methods and fields: a protocol's members)."""
    names = set()
    for module in modules(folder):
        with open(os.path.join(ROOT, folder, module + ".py"), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
        for node in tree.body + [member for cls in classes for member in cls.body]:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            for target in getattr(node, "targets", []) + [getattr(node, "target", None)]:
                for leaf in ast.walk(target) if target is not None else ():
                    if isinstance(leaf, ast.Name):
                        names.add(leaf.id)
    return names


def test_every_folder_has_a_line_and_every_module_is_named_in_it():
    lines = map_lines()
    assert sorted(lines) == packages()
    missing = {folder: [module for module in modules(folder) if f"`{module}`" not in lines[folder]] for folder in lines}
    assert not {folder: names for folder, names in missing.items() if names}, missing


def test_every_name_in_the_map_exists():
    unknown = {}
    for folder, line in map_lines().items():
        known = set(modules(folder)) | defined_names(folder)
        names = [name for name in re.findall(r"`([^`]+)`", line)[1:] if IDENTIFIER.fullmatch(name)]
        unknown[folder] = [name for name in names if name not in known]
    assert not {folder: names for folder, names in unknown.items() if names}, unknown
