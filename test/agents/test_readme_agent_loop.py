"""The README's agent loop runs as written (extracted from README.md, so the two cannot drift), and
its option table names every DriveConfig field."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- agent-loop -->"

def agent_loop_code() -> str:
    text = README.read_text(encoding="utf-8")
    assert text.count(MARKER) == 1, f"README.md needs exactly one {MARKER} line before the agent loop"
    block = re.match(r"\s*```python\n(.*?)\n```", text.split(MARKER, 1)[1], re.S)
    assert block, f"a ```python block must follow {MARKER}"
    return block.group(1)


def test_readme_option_table_names_every_drive_config_field():
    import dataclasses

    from inspatio_ros.agents.gym_env import DriveConfig

    section = README.read_text(encoding="utf-8").split("## Agents: a Gymnasium environment", 1)[1].split(MARKER)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    missing = {f.name for f in dataclasses.fields(DriveConfig)} - named
    assert not missing, f"README's Drive-v0 option table lacks {sorted(missing)}"


@pytest.mark.slow      # a fresh interpreter loading torch and the default world: ~15 s
def test_readme_agent_loop_drives_the_default_world(tmp_path):
    code = agent_loop_code()
    assert len(code.splitlines()) <= 12
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", INSPATIO_NO_PROGRESS="1",
               PYTHONPATH=os.pathsep.join([str(README.parent), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    found = re.search(r"drove ([\d.]+) m, ([+-][\d.]+) m off the recorded path", out.stdout)
    assert found, out.stdout
    assert float(found.group(1)) > 25.0 and abs(float(found.group(2))) < 0.5, out.stdout
