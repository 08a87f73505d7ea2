"""GPU point renderer: surfel z-buffer splatting with hole filling, batched over cameras.

One algorithm, written once in plain PyTorch (no per-pixel or per-point Python loops): on CUDA
the stages are compiled (torch.compile) into fused kernels and ``Renderer`` replays each batch
shape from a CUDA graph (no host synchronisation inside a render). On the CPU, ``Renderer`` runs
the same steps as fused numba kernels (cpu.py: eager PyTorch makes ~300 passes over memory per
frame); ``render_points`` stays the reference they are tested against.

Modules, in the order of the data flow:

- types.py        RenderSettings, Cameras, PointCloud, RenderOutput, resolve_device
- reference.py    render_points: centre z-buffer, plane depth, then the steps below (how a batch
                  is rendered is told there)
- splats.py       surfel expansion, ring by ring
- fill.py         push-pull hole filling
- compiled.py     torch.compile of the stages on CUDA; eager_rendering()
- culling.py      ChunkedCloud: spatial chunks, frustum culling
- cpu.py          the same render as fused numba kernels (cpu_kernels.py), what Renderer runs on
                  the CPU
- cuda_graphs.py  a render captured in a CUDA graph
- renderer.py     Renderer, render, world_point_cloud
- directional.py  DirectionalViews, render_directions: the world along arbitrary ray directions
                  (cube-face views in one batch, then a per-direction lookup; LiDAR, fisheye)
- offline.py      render_trajectory: a world along a trajectory into a video

Outputs: rgb uint8 (B,H,W,3), depth float32 metres (B,H,W, z-depth, NaN = unknown) and
coverage bool (B,H,W): True where the world was seen, False where hole-filled or empty.
"""
from .compiled import eager_rendering
from .culling import ChunkedCloud
from .directional import DirectionalSamples, DirectionalViews, render_directions
from .offline import render_trajectory, scene_depth
from .reference import render_points
from .renderer import Renderer, render, world_point_cloud
from .types import Cameras, PointCloud, RenderOutput, RenderSettings, resolve_device

__all__ = ["Cameras", "ChunkedCloud", "DirectionalSamples", "DirectionalViews", "PointCloud", "RenderOutput", "RenderSettings", "Renderer", "eager_rendering",
           "render", "render_directions", "render_points", "render_trajectory", "resolve_device", "scene_depth", "world_point_cloud"]
