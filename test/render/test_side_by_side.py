"""render/cpu.py SideBySide: one tick's camera batches and LiDAR sweeps rendered on two threads
with single-threaded kernels give what the parallel kernels give one after the other."""
import threading

import numpy as np
import pytest
import torch

from inspatio_ros.render import cpu

pytestmark = pytest.mark.skipif(not cpu.available(), reason="numba is not installed")


def test_plan_balances_the_jobs_and_falls_back_when_it_cannot():
    runner = cpu.SideBySide(threads=2)
    assert runner.plan(["a"]) is None                                  # one job: nothing to share
    assert cpu.SideBySide(threads=1).plan(["a", "b"]) is None            # one core
    assert cpu.SideBySide(threads=1).plan(["a", "b"], always=True) is not None
    lanes = runner.plan(["a", "b"])                                      # costs unknown: measure them
    assert sorted(lanes[0] + lanes[1]) == ["a", "b"] and lanes[0] and lanes[1]
    runner.cost.update({"a": 0.055, "b": 0.072, "c": 0.020})
    runner.runs.update({"a": 3, "b": 3, "c": 3})
    lanes = runner.plan(["a", "b", "c"])
    assert lanes == (["b"], ["a", "c"])                                  # longest first onto the lighter lane
    runner.cost.update({"six_cameras": 0.300})
    runner.runs["six_cameras"] = 2
    assert runner.plan(["six_cameras", "b"]) is not None, "decided only once every job was measured 3 times"
    runner.runs["six_cameras"] = 3
    assert runner.plan(["six_cameras", "b"]) is None                     # 0.30 of 0.37 on one thread
    assert runner.plan(["six_cameras", "b"], always=True) == (["six_cameras"], ["b"])
    runner.cost["six_cameras"] = 0.05
    assert runner.plan(["six_cameras", "b"]) is None, "a job set found unbalanced stays sequential"


def test_run_uses_two_threads_with_serial_kernels_and_keeps_the_keys():
    runner = cpu.SideBySide(threads=2)
    seen = {}
    barrier = threading.Barrier(2, timeout=10)

    def job(name):
        def run():
            barrier.wait()                       # both lanes run at the same time
            seen[name] = (threading.current_thread().name, cpu.in_serial_kernels())
            return name.upper()
        return run

    out = runner.run({"x": job("x"), "y": job("y")})
    assert out == {"x": "X", "y": "Y"} and list(out) == ["x", "y"]
    assert seen["x"][0] != seen["y"][0] and seen["x"][1] and seen["y"][1]
    assert not cpu.in_serial_kernels(), "the calling thread's kernels are parallel again"
    assert set(runner.cost) == {"x", "y"}
    runner.cost.clear()
    runner.run({"x": job("x"), "y": job("y")}, always=True)
    assert not runner.cost, "forced runs (the warm-up's, which compile) leave the costs alone"

    def fails():
        raise ValueError("job failed")

    with pytest.raises(ValueError, match="job failed"):
        runner.run({"x": lambda: 0, "bad": fails, "z": lambda: 1})
    runner.close()


def test_simulator_renders_cameras_and_lidar_side_by_side_as_one_after_the_other(street_world):
    """Three cameras (two of one size: one batch one after the other, a job each side by side)
    and a VLP-16 on a moving ego: every image, depth, coverage and LiDAR point the same."""
    from inspatio_ros.sim.lidar import load_lidars
    from inspatio_ros.sim.rig import load_rig
    from inspatio_ros.sim.simulator import Simulator
    from inspatio_ros.world import World

    world = World.load(street_world)
    rig = load_rig({"cameras.names": ["front", "left", "right"], "cameras.left.rpy": [0.0, 0.0, 1.5708],
                    "cameras.left.width": 96, "cameras.left.height": 64, "cameras.right.rpy": [0.0, 0.0, -1.5708]})
    sim = Simulator(world, rig, device="cpu", lidars=load_lidars({"lidars.names": ["top"]}))
    t = float(world.frame_time[3])
    base = sim.recorded_base_pose(t)
    velocity = (np.array([5.0, 0, 0]), np.array([0, 0, 0.2]))

    def by_camera(rendered):
        return {spec.name: (out.rgb[i], out.depth[i], out.coverage[i])
                for specs, _, _, out in rendered["cameras"] for i, spec in enumerate(specs)}

    one_by_one = sim._render_all(base, t, sim.rig, sim.lidars, *velocity, side_by_side=False)
    assert [[s.name for s in specs] for specs, *_ in one_by_one["cameras"]] == [["front", "right"], ["left"]]
    side = sim._render_all(base, t, sim.rig, sim.lidars, *velocity, side_by_side=True)
    assert [[s.name for s in specs] for specs, *_ in side["cameras"]] == [["front"], ["right"], ["left"]]
    planned = sim._render_all(base, t, sim.rig, sim.lidars, *velocity)          # SideBySide.run decides
    assert set(sim._side_by_side.cost) == {("cameras", ("front",)), ("cameras", ("right",)), ("cameras", ("left",)),
                                           ("lidar", "top")}
    reference = by_camera(one_by_one)
    for other in (side, planned):
        for name, (rgb, depth, coverage) in by_camera(other).items():
            assert torch.equal(rgb, reference[name][0]) and torch.equal(coverage, reference[name][2])
            assert torch.equal(torch.nan_to_num(depth, nan=-1.0), torch.nan_to_num(reference[name][1], nan=-1.0))
        assert len(one_by_one["lidars"][0].points) > 1000
        assert one_by_one["lidars"][0].points.tobytes() == other["lidars"][0].points.tobytes()
    frame = sim.render(0.0, t, base, velocity=velocity)
    assert [c.spec.name for c in frame.cameras] == ["front", "left", "right"] and frame.lidars[0].spec.name == "top"
    assert np.array_equal(frame.cameras[2].rgb, reference["right"][0].numpy())
