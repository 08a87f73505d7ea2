"""Frustum culling on the CPU: a point cloud sorted into spatial chunks with bounding boxes."""
from __future__ import annotations

import torch

from .types import Cameras, PointCloud


class ChunkedCloud:
    """A PointCloud sorted into spatial chunks (contiguous slices) with bounding boxes, so a batch
    of cameras only projects the run of chunks that can touch its images (frustum culling).

    Culling is exact: a chunk is dropped only when all 8 corners of its box lie beyond one plane of
    every camera's frustum widened by the splat cap (``max_splat_px``) or behind the near plane;
    points outside that region cannot reach a pixel. Only point order changes, which decides ties
    of exactly equal depth.
    """

    def __init__(self, cloud: PointCloud, cell_m: float = 8.0):
        xyz = cloud.xyz
        cells = torch.floor(xyz / cell_m).to(torch.int64)
        cells -= cells.min(dim=0).values
        span = cells.max(dim=0).values + 1
        key = (cells[:, 0] * span[1] + cells[:, 1]) * span[2] + cells[:, 2]
        key, order = torch.sort(key, stable=True)
        self.cloud = cloud.take(order)
        _, counts = torch.unique_consecutive(key, return_counts=True)
        self.counts = counts
        self.starts = torch.cumsum(counts, 0) - counts
        chunk = torch.repeat_interleave(torch.arange(len(counts), device=xyz.device), counts)
        lo = torch.full((len(counts), 3), float("inf"), device=xyz.device)
        hi = torch.full((len(counts), 3), float("-inf"), device=xyz.device)
        idx = chunk[:, None].expand(-1, 3)
        lo.scatter_reduce_(0, idx, self.cloud.xyz, "amin")
        hi.scatter_reduce_(0, idx, self.cloud.xyz, "amax")
        # The 8 corners of each chunk's box: (C, 8, 3).
        pick = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], device=xyz.device, dtype=torch.bool)
        self.corners = torch.where(pick[None], hi[:, None, :], lo[:, None, :])

    def visible_chunks(self, cams: Cameras, near: float, margin_px: float) -> torch.Tensor:
        """(C,) bool: chunks that may touch an image of the batch."""
        rot, centre = cams.c2w[:, :3, :3], cams.c2w[:, :3, 3]
        # Corners in each camera's frame: (B, C, 8, 3).
        rel = self.corners[None] - centre[:, None, None, :]
        pc = torch.einsum("bckj,bji->bcki", rel, rot)
        x, y, z = pc[..., 0], pc[..., 1], pc[..., 2]
        K = cams.K
        fx, fy, cx, cy = (K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2])
        right = ((cams.width + margin_px - cx) / fx)[:, None, None]
        left = ((cx + margin_px) / fx)[:, None, None]
        down = ((cams.height + margin_px - cy) / fy)[:, None, None]
        up = ((cy + margin_px) / fy)[:, None, None]
        outside = ((z <= near).all(-1) | (x > right * z).all(-1) | (x < -left * z).all(-1)
                   | (y > down * z).all(-1) | (y < -up * z).all(-1))
        return ~outside.all(0)

    def subset(self, cams: Cameras, near: float, margin_px: float) -> PointCloud:
        """The contiguous run of chunks from the first to the last visible one, as views (no copy:
        gathering scattered chunks costs more on the CPU than projecting them). Chunks are sorted
        x-major, so for a camera moving along x the run leaves out what is behind it."""
        keep = self.visible_chunks(cams, near, margin_px)
        found = torch.nonzero(keep)
        if len(found) == 0:
            return self.cloud            # nothing in view: render everything (the renderer needs points)
        lo = int(self.starts[found[0, 0]])
        hi = int(self.starts[found[-1, 0]] + self.counts[found[-1, 0]])
        if lo == 0 and hi == len(self.cloud.xyz):
            return self.cloud
        return self.cloud.take(slice(lo, hi))
