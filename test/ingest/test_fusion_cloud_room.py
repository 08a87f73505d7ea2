"""Fusion's compared surfels (WorldFuser.cloud) grow inside buffers with room to spare instead of
being concatenated anew every frame: the same cloud, hence the same world."""
import numpy as np
import torch

from inspatio_ros.ingest.fusion import FusionSettings, WorldFuser, fuse
from inspatio_ros.render import PointCloud

from test_streaming import _wall_frames


def _concatenating(self, xyz, rgb, radius, normal) -> None:
    """The cloud as a fresh concatenation every frame (what fusion did before the buffers)."""
    new = PointCloud.from_arrays(xyz, rgb, radius, normal, device=self.device)
    drawn = torch.full((len(new),), self.frames_added, dtype=torch.int64, device=self.device)
    if self.cloud is None:
        self.cloud, self.last_drawn = new, drawn
        return
    old = self.cloud
    self.cloud = PointCloud(*(torch.cat([getattr(old, f), getattr(new, f)])
                              for f in ("xyz", "rgb", "radius", "normal", "t_start", "t_end")),
                            surfel=torch.cat([old.surfel, new.surfel]))
    self.last_drawn = torch.cat([self.last_drawn, drawn])


def test_fusion_with_the_cloud_in_buffers_makes_the_world_of_concatenation(monkeypatch):
    """A camera sliding along a wall for 40 frames with a short active window (surfels retire and
    the cloud is compacted, then grows again): every layer of the world is the same."""
    frames, poses, depth = _wall_frames(40)
    settings = FusionSettings(frame_local=False, active_window=6)
    worlds = {}
    for how in ("buffers", "concatenated"):
        if how == "concatenated":
            monkeypatch.setattr(WorldFuser, "_append_to_cloud", _concatenating)
        worlds[how] = fuse(frames, poses, depth, np.zeros(40, bool), settings, torch.device("cpu"))
    a, b = worlds["buffers"], worlds["concatenated"]
    assert a.held_at_once["surfels compared"] == b.held_at_once["surfels compared"]
    for name in ("xyz", "rgb", "radius", "normal", "frame"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.added == b.added and len(a.xyz) > 0


def test_the_cloud_is_a_prefix_of_its_buffers_and_grows_without_copying_each_frame():
    from inspatio_ros.camera import Intrinsics

    fuser = WorldFuser(Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48), FusionSettings(active_window=0),
                       torch.device("cpu"))
    rng = np.random.default_rng(0)
    grown = []
    for k in range(6):
        n = 100 + 10 * k
        fuser._append_to_cloud(rng.random((n, 3), np.float32), rng.integers(0, 255, (n, 3), np.uint8),
                               rng.random(n, np.float32), rng.random((n, 3), np.float32))
        fuser.frames_added += 1
        if fuser._room is not None:
            grown.append(fuser._room["xyz"].data_ptr())
            assert fuser.cloud.xyz.data_ptr() == fuser._room["xyz"].data_ptr()
    assert len(fuser.cloud) == sum(100 + 10 * k for k in range(6))
    assert len(set(grown)) < len(grown), "some frames were appended in place"
    assert fuser.last_drawn.tolist() == sum(([k] * (100 + 10 * k) for k in range(6)), [])
    packed = PointCloud(fuser.cloud.xyz, fuser.cloud.rgb, fuser.cloud.radius, fuser.cloud.normal,
                        fuser.cloud.t_start, fuser.cloud.t_end)        # surfel rows derived afresh
    assert torch.equal(packed.surfel, fuser.cloud.surfel)
