"""Progress bars with an ETA for long work (tqdm on stderr; quiet when not a terminal in CI)."""
from __future__ import annotations

import os
import sys

from tqdm import tqdm


def progress(iterable=None, *, total=None, desc: str = "", unit: str = "it"):
    """A tqdm bar showing rate and ETA. INSPATIO_NO_PROGRESS=1 hides it (tests, logs)."""
    disable = os.environ.get("INSPATIO_NO_PROGRESS") == "1"
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr,
                dynamic_ncols=True, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]")
