"""Write the node's parameter table into README.md from the settings' metadata.

The table (name, default, unit, valid values, meaning of every node parameter) is made by
:func:`inspatio_ros.sim.parameters.markdown_table` from the fields of
:class:`inspatio_ros.sim.settings.NodeSettings`, and goes between the README's two marker lines.
test/sim/test_parameters.py fails when the README's table is not what this would write.

usage: python tools/parameter_table.py [--check]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inspatio_ros.sim.parameters import markdown_table, with_table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether README.md is current (exit 1 if not)")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    new = with_table(text, markdown_table())
    if args.check:
        print("README.md parameter table is " + ("current" if new == text else "stale: run tools/parameter_table.py"))
        return 0 if new == text else 1
    if new != text:
        readme.write_text(new, encoding="utf-8")
        print("README.md: parameter table rewritten")
    else:
        print("README.md: parameter table already current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
