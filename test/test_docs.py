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
