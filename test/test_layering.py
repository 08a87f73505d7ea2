"""The core is the library; the ROS adapter (ros/) and the command line (cli/) sit on top of it.

No module outside ros/ and cli/ may import either of them: not at import time (checked in a fresh
interpreter: this test process has long imported both) and not inside a function either (checked
on the source: config.py once imported ros.params inside load_render_settings)."""
import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "inspatio_ros"
ADAPTERS = ("inspatio_ros.ros", "inspatio_ros.cli")


def core_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if not any(name == a or name.startswith(a + ".") for a in ADAPTERS):
            names.append(name)
    return names


def test_the_core_imports_nothing_of_ros_or_cli():
    modules = core_modules()
    assert "inspatio_ros.world" in modules and "inspatio_ros.sim.session" in modules
    # One interpreter imports every core module in turn and names the first that pulls in an adapter.
    code = f"""
import importlib, sys
for name in {modules!r}:
    importlib.import_module(name)
    bad = sorted(m for m in sys.modules if m.startswith({ADAPTERS!r}))
    if bad:
        print(name, "loaded", bad)
        break
else:
    print("clean")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean", out.stdout


def _resolve(package: str, node: ast.ImportFrom) -> str:
    """The absolute name of ``from ... import`` in ``package``."""
    if not node.level:
        return node.module or ""
    base = package.split(".")[:len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def test_no_core_source_names_ros_or_cli_in_an_import():
    offenders = []
    for name in core_modules():
        path = PACKAGE.parent.joinpath(*name.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        # A package's own relative imports start from the package itself.
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                targets = [_resolve(package, node)]
                targets += [f"{targets[0]}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            if any(t == a or t.startswith(a + ".") for t in targets for a in ADAPTERS):
                offenders.append(f"{name}:{node.lineno}")
    assert not offenders, offenders
