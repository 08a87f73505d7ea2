"""eval's depth AbsRel after the trajectory's similarity alignment, on worlds of known scale."""
import dataclasses

import numpy as np

from inspatio_ros.eval import evaluate
from inspatio_ros.world import World


def _scaled(world: World, factor: float) -> World:
    """The same world in other units (positions, radii and camera centres times ``factor``),
    labelled as built from estimated poses, as a monocular build without scale would be."""
    def poses(c2w):
        out = np.array(c2w, copy=True)
        out[:, :3, 3] *= factor
        return out

    return dataclasses.replace(
        world, static_xyz=world.static_xyz * factor, static_radius=world.static_radius * factor,
        dynamic_xyz=world.dynamic_xyz * factor, dynamic_radius=world.dynamic_radius * factor,
        frame_c2w=poses(world.frame_c2w), heldout_c2w=poses(world.heldout_c2w),
        info={**world.info, "pose_source": "estimated (test: known scale)"})


def test_aligned_depth_absrel_undoes_a_known_scale(street_world, street):
    """A world 0.3x or 3x too large scores the true world's AbsRel after alignment (the scale
    found from the camera path, applied to the rendered depth), and about |factor - 1| without."""
    world = World.load(street_world)
    truth = evaluate(_scaled(world, 1.0), street, device="cpu", shifts=False)
    assert truth.depth_absrel < 0.1 and abs(truth.depth_absrel_aligned - truth.depth_absrel) < 1e-3
    for factor in (0.3, 3.0):
        scaled = evaluate(_scaled(world, factor), street, device="cpu", shifts=False)
        assert abs(scaled.depth_absrel_aligned - truth.depth_absrel) < 0.01, (factor, scaled.depth_absrel_aligned)
        assert abs(scaled.depth_absrel - abs(factor - 1.0)) < 0.1 * abs(factor - 1.0) + truth.depth_absrel
        assert scaled.ate_rel < 1e-6
