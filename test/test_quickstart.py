"""The README's Python quick start runs as written (extracted from README.md, so the two cannot drift)."""
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- quickstart -->"


def quickstart_code() -> str:
    text = README.read_text(encoding="utf-8")
    assert text.count(MARKER) == 1, f"README.md needs exactly one {MARKER} line before the quick start"
    block = re.match(r"\s*```python\n(.*?)\n```", text.split(MARKER, 1)[1], re.S)
    assert block, f"a ```python block must follow {MARKER}"
    return block.group(1)


def test_readme_quickstart_runs_on_the_cpu(tmp_path):
    code = quickstart_code()
    assert len(code.splitlines()) <= 12
    # A fresh interpreter in an empty folder (the snippet writes scene/ and street.safetensors
    # where it runs), on the CPU even where a GPU is present.
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", INSPATIO_NO_PROGRESS="1")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "torch.Size([1, 90, 160, 3])" in out.stdout and "(180, 320, 3)" in out.stdout, out.stdout
    assert (tmp_path / "street.safetensors").is_file()
