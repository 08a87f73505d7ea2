"""The README and docs/ stay true to the repository: every relative link and every script path they
name exists (docs were restructured and scripts moved between bench/ and tools/ before)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
SCRIPT = re.compile(r"\b((?:bench|tools)/[A-Za-z0-9_]+\.py)\b")


def markdown_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    assert len(files) > 3, "docs/ not found"
    return files


def test_relative_links_in_the_docs_resolve():
    broken = []
    for md in markdown_files():
        for target in LINK.findall(md.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            if not (md.parent / target).exists():
                broken.append(f"{md.relative_to(ROOT)} -> {target}")
    assert not broken, "links to missing files:\n" + "\n".join(broken)


def test_scripts_named_in_the_docs_exist():
    missing = []
    for md in markdown_files():
        for script in SCRIPT.findall(md.read_text(encoding="utf-8")):
            if not (ROOT / script).is_file():
                missing.append(f"{md.relative_to(ROOT)} names {script}")
    assert not missing, "scripts the docs name but the repository lacks:\n" + "\n".join(missing)


# How the code reads an environment variable: os.environ.get("X"), os.environ["X"],
# os.environ.setdefault("X", ...), os.getenv("X"), "X" in os.environ.
ENV_READ = re.compile(r"""(?:environ(?:\.get|\.setdefault|\.pop)?\s*[(\[]|getenv\s*\()\s*["']([A-Z][A-Z0-9_]*)["']""")
ENV_IN = re.compile(r"""["']([A-Z][A-Z0-9_]*)["']\s+(?:not\s+)?in\s+(?:_?os\.)?environ""")


def environment_variables_in_code() -> dict[str, str]:
    found = {}
    for folder in ("inspatio_ros", "bench", "tools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for name in ENV_READ.findall(text) + ENV_IN.findall(text):
                found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def test_every_environment_variable_the_code_reads_is_in_the_readme():
    found = environment_variables_in_code()
    assert {"INSPATIO_NO_PROGRESS", "ROS_DOMAIN_ID", "OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER"} <= set(found), found
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Environment variables\n", 1)[1].split("\n## ", 1)[0]
    missing = [f"{name} (read in {where})" for name, where in sorted(found.items()) if f"`{name}`" not in section]
    assert not missing, "add these to the README's 'Environment variables' table:\n" + "\n".join(missing)
