"""``python -m inspatio_ros.record.recover DIR``: make a recording whose recorder was killed readable."""
from __future__ import annotations

import sys

from ..errors import InputError
from .recorder import recover_recording


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m inspatio_ros.record.recover RECORDING_DIR", file=sys.stderr)
        return 2
    try:
        counts = recover_recording(argv[0])
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for topic, n in sorted(counts.items()):
        print(f"{topic:40s} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
