"""``inspatio-ros info WORLD``: what a world file holds (format, size, frames, provenance)."""
from __future__ import annotations

import json

from ..world import World


def register(subparsers) -> None:
    p = subparsers.add_parser("info", help="print what a world file holds")
    p.add_argument("world", help="world file (.safetensors)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    summary = World.load(args.world).summary()
    summary["info"] = {k: v for k, v in summary["info"].items() if k not in ("frame_names", "points_added_per_frame")}
    fingerprint = summary["provenance"].get("heldout_fingerprint")
    if isinstance(fingerprint, dict):
        # Thumbnails for eval's check (ingest/fingerprint.py), kilobytes of base64: say what they are.
        summary["provenance"] = dict(summary["provenance"], heldout_fingerprint=(
            f"{fingerprint.get('method')} of held-out frames {fingerprint.get('frames')}"))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for key, value in summary.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")
    return 0
