"""The build's stages done ahead on a second thread (ingest/ahead.py): results in order and the
same as on one thread, errors reach the caller, the worker stops when the caller does, and its
kernels are the single-threaded twins (numba's workqueue pool aborts on two threads at once)."""
import threading
import time

import numpy as np
import pytest

from inspatio_ros.ingest.ahead import Ahead
from inspatio_ros.runtime import in_serial_kernels


def test_results_come_in_order_from_a_worker_with_serial_kernels():
    seen = []

    def produce(k):
        seen.append((threading.current_thread().name, in_serial_kernels()))
        return k * k
    with Ahead(produce, 7, lead=2, name="test_ahead") as ahead:
        assert [ahead.get(k) for k in range(7)] == [k * k for k in range(7)]
        with pytest.raises(ValueError, match="in order"):
            ahead.get(3)
    assert seen == [("test_ahead", True)] * 7
    with Ahead(lambda k: (time.sleep(0.01 * (k % 3)), threading.current_thread().name)[1], 12, lead=3,
               workers=2, name="pair") as pair:
        names = [pair.get(k) for k in range(12)]
    assert set(names) == {"pair_0", "pair_1"}, "two workers, results still in order"
    assert not in_serial_kernels(), "the caller's kernels stay parallel"
    assert ahead.cpu_seconds >= 0 and ahead.busy_seconds >= 0 and ahead.waited_seconds >= 0


def test_an_error_of_the_worker_reaches_the_caller_at_its_frame():
    def produce(k):
        if k == 3:
            raise KeyError("frame 3 is missing")
        return k
    ahead = Ahead(produce, 6)
    assert [ahead.get(k) for k in range(3)] == [0, 1, 2]
    with pytest.raises(KeyError, match="frame 3 is missing"):
        ahead.get(3)
    assert not any(t.is_alive() for t in ahead._threads)


def test_the_worker_stops_when_the_caller_does():
    made = []

    def produce(k):
        made.append(k)
        return k
    ahead = Ahead(produce, 1000, lead=2)
    assert ahead.get(0) == 0
    time.sleep(0.05)
    ahead.close()
    assert not any(t.is_alive() for t in ahead._threads)
    assert len(made) <= 4, "at most `lead` results beyond what the caller took (plus one being made)"


def test_the_worker_runs_the_single_threaded_twin_of_a_parallel_kernel():
    """thread_kernel gives the worker a twin compiled without parallel (same results), the caller
    the kernel itself; a twin of the real view-check kernel is what fusion's worker calls."""
    from inspatio_ros.ingest.consistency import view_check_kernels
    from inspatio_ros.runtime import serial_twin, thread_kernel

    kernels = view_check_kernels()
    if kernels is None:
        pytest.skip("no numba")
    kernel = kernels.add_seen_through
    with Ahead(lambda k: thread_kernel(kernel), 1) as ahead:
        twin = ahead.get(0)
    assert twin is serial_twin(kernel) and twin is not kernel and not twin.targetoptions.get("parallel")
    assert thread_kernel(kernel) is kernel


def test_fusion_with_the_view_check_ahead_is_bit_identical_to_one_thread(monkeypatch):
    """fuse with the view check on a worker thread (the default on the CPU) makes exactly the
    world that fuse on one thread (INSPATIO_BUILD_AHEAD=0) makes: a camera sliding along a wall
    with floaters and moving blobs, so the seen-through counts and moving masks matter."""
    import torch

    from inspatio_ros.ingest.fusion import FusionSettings, fuse

    from test_streaming import _wall_frames

    frames, poses, depth = _wall_frames(24)
    worlds = {}
    for ahead in ("1", "0"):
        monkeypatch.setenv("INSPATIO_BUILD_AHEAD", ahead)
        worlds[ahead] = fuse(frames, poses, depth, np.zeros(24, bool), FusionSettings(frame_local=True),
                             torch.device("cpu"))
    threaded, single = worlds["1"], worlds["0"]
    assert max(single.seen_through) > 0.005 and len(single.dynamic["dynamic_xyz"]) > 0
    for name in ("xyz", "rgb", "radius", "normal", "frame"):
        np.testing.assert_array_equal(getattr(threaded, name), getattr(single, name))
    assert threaded.dynamic.keys() == single.dynamic.keys()
    for name in single.dynamic:
        np.testing.assert_array_equal(threaded.dynamic[name], single.dynamic[name])
    assert threaded.seen_through == single.seen_through and threaded.added == single.added
    assert threaded.cpu_seconds["view consistency"] > 0


def test_an_error_in_the_view_check_stops_fusion_with_it(monkeypatch):
    """A depth map that cannot be read fails the build with that error, from the worker thread."""
    import torch

    from inspatio_ros.errors import InputError
    from inspatio_ros.ingest.depth import Depth
    from inspatio_ros.ingest.fusion import FusionSettings, fuse

    from test_streaming import _wall_frames

    frames, poses, depth = _wall_frames(12)

    def broken(i, shape):
        if i == 7:
            raise InputError("depth map 000007 is unreadable", "write it again")
        return depth.load(i, shape)
    with pytest.raises(InputError, match="000007 is unreadable"):
        fuse(frames, poses, Depth(broken, "given", moving=depth.moving), np.zeros(12, bool),
             FusionSettings(frame_local=False), torch.device("cpu"))
    assert not [t for t in threading.enumerate() if t.name == "inspatio_view_check"]


def test_dense_depth_with_the_sweep_ahead_is_bit_identical_to_one_thread(monkeypatch):
    """dense_depth with the plane sweeps of the next frames on a worker thread (the default on the
    CPU) gives exactly the maps, confidences and moving masks of dense_depth on one thread: a
    camera driving down a textured corridor, with the road plane, propagation and slanted planes."""
    from inspatio_ros.ingest.mvs import MVSSettings, dense, dense_depth

    from test_streaming import _corridor

    monkeypatch.setattr(dense, "ROAD_PLANE_FRAMES", 6)
    settings = MVSSettings(max_size=64, planes=16, pyramid_levels=2, refine_steps=5, road_plane=True, propagate=1,
                           source_baseline=0, max_offset=4, source_step=1, max_depth_uncertainty=0.5)
    frames, c2w, intr = _corridor(16)
    results = {}
    for ahead in ("1", "0"):
        monkeypatch.setenv("INSPATIO_BUILD_AHEAD", ahead)
        results[ahead] = dense_depth(lambda i: frames[i], c2w, intr, list(range(16)), settings, "cpu",
                                     progress_bar=False)
    threaded, single = results["1"], results["0"]
    assert np.isfinite(single.maps[8][0]).mean() > 0.3          # it measured the corridor
    for i in range(16):
        for a, b in zip(threaded.maps[i], single.maps[i]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(threaded.moving[i], single.moving[i])
    assert threaded.road_plane is not None
    np.testing.assert_array_equal(threaded.road_plane[0], single.road_plane[0])
    assert threaded.road_plane[1] == single.road_plane[1]
