import os

os.environ.setdefault("INSPATIO_NO_PROGRESS", "1")

from inspatio_ros.runtime import keep_freed_memory

keep_freed_memory()

# ROS 2 participants of the tests (node subprocesses, rclpy probes, DDS readers) stay on the
# loopback interface and on a domain of their own, so parallel test runs do not cross-talk.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 200))


import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def cpu_render_kernels():
    """Compile the renderer's CPU kernels once, before any test starts a node process: numba
    caches them on disk, so the nodes load them instead of compiling (~20 s) under a timeout."""
    from inspatio_ros.render import cpu

    if cpu.available():
        cpu.warm_up()


@pytest.fixture(scope="session")
def street(tmp_path_factory):
    """A small static street (no moving cars) with exact depth and poses (read-only: tests that
    change it work on a copy)."""
    from inspatio_ros.synth.generate import generate

    out = tmp_path_factory.mktemp("street")
    generate("street", out, size=(160, 96), frames=16, moving_cars=0, seed=1)
    return out


@pytest.fixture(scope="session")
def street_world(street, tmp_path_factory):
    """The street built from its exact depth and poses, every 5th frame held out."""
    from inspatio_ros.cli import main

    path = tmp_path_factory.mktemp("world") / "street.safetensors"
    assert main(["build", str(street), "-o", str(path), "--holdout", "5"]) == 0
    return path


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device (and gsplat where it says so); skipped without one")
    config.addinivalue_line("markers", "slow: takes a minute or more; `pytest -m 'not slow'` leaves it out, CI runs it")
