"""The package's faces: what render's __all__ names exists, and no file of the package, its tests,
bench/ or tools/ imports a private (underscore) name from another module or reaches into one
(``module._name``): what another file needs is public, with a name that says what it is."""
import ast
from pathlib import Path

import inspatio_ros.render as render

ROOT = Path(__file__).resolve().parents[1]


def test_all_names_exist():
    assert sorted(render.__all__) == sorted(set(render.__all__))
    for name in render.__all__:
        assert hasattr(render, name), name


def test_no_private_name_crosses_a_file():
    files = [p for folder in ("inspatio_ros", "test", "bench", "tools") for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 150
    crossing = []
    for path in files:
        tree = ast.parse(path.read_text())
        modules = set()              # names bound to inspatio_ros modules: their _attributes are private too
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("inspatio_ros")):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        crossing.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name}")
                    modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                modules.update(a.asname or a.name.split(".")[0] for a in node.names
                               if a.name.startswith("inspatio_ros"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                crossing.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not crossing, crossing
