"""The ingest package's face: what mvs.__all__ names exists, and no file of the project imports a
private (underscore) name of an ingest module (or reads one through the module)."""
import ast
from pathlib import Path

import inspatio_ros.ingest.mvs as mvs

ROOT = Path(__file__).resolve().parents[2]


def test_mvs_all_names_exist():
    assert sorted(mvs.__all__) == sorted(set(mvs.__all__))
    for name in mvs.__all__:
        assert hasattr(mvs, name), name


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    """The module an ImportFrom reads from, as a dotted name (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    base = package[:len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_name_of_ingest_crosses_a_file():
    files = [p for folder in ("inspatio_ros", "bench", "test", "tools") for p in sorted((ROOT / folder).rglob("*.py"))]
    crossing = []
    for path in files:
        tree = ast.parse(path.read_text())
        modules = set()           # names bound to ingest modules: their _attributes are private too
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and _absolute(path, node).startswith("inspatio_ros.ingest"):
                for alias in node.names:
                    if _private(alias.name):
                        crossing.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name}")
                    modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                modules.update(a.asname for a in node.names if a.asname and a.name.startswith("inspatio_ros.ingest"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and _private(node.attr)):
                crossing.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not crossing, crossing
