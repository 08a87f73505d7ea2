"""On a CUDA machine with gsplat: the reference rasterizer and gsplat's kernels agree on random
scenes, forward and gradients (tools/gsplat_check.py; skipped without CUDA or gsplat)."""
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.cuda


def test_reference_matches_gsplat_on_random_scenes():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from inspatio_ros.gaussians.backend import gsplat_available

    if not gsplat_available():
        pytest.skip("gsplat is not installed")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    from gsplat_check import check

    results = check(scenes=3, n=2000, cameras=2, width=160, height=96)
    assert not [r["failures"] for r in results if r["failures"]]
