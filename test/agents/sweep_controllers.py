"""Controllers for the sweep tests, named in scenario files as ``sweep_controllers:<factory>``.

``follow``: pure pursuit on the observation's reference path at a fixed speed (a callable
controller as a user would write one). ``always_fails``: raises on every call. ``fails_once``:
raises in the first attempt of a scenario (a marker file beside it), then follows. ``twist``:
a constant TwistCommand. ``slow``: ``follow`` taking a set wall time per call.
"""
from __future__ import annotations

import math
from pathlib import Path

from inspatio_ros.agents.controllers import AckermannCommand


def follow(scenario, path, speed: float = 4.0, lookahead: float = 5.0, wheelbase: float = 2.7):
    state = {"s": None}

    def act(obs):
        x, y = obs.map_from_base[0, 3], obs.map_from_base[1, 3]
        yaw = math.atan2(obs.map_from_base[1, 0], obs.map_from_base[0, 0])
        state["s"] = path.project(x, y, near_s=state["s"]).s
        tx, ty, _ = path.point_at(state["s"] + lookahead)
        dx, dy = tx - x, ty - y
        ly = -math.sin(yaw) * dx + math.cos(yaw) * dy
        curvature = 2 * ly / max(dx * dx + dy * dy, 1e-6)
        return AckermannCommand(steering=max(-0.5, min(0.5, math.atan(wheelbase * curvature))), speed=speed,
                                acceleration=0.0)

    return act


def always_fails(scenario, path, **params):
    def act(obs):
        raise RuntimeError("controller crashed on purpose")

    return act


def fails_once(scenario, path, marker_dir: str = "", **params):
    marker = Path(marker_dir) / f"{scenario.name}.tried"
    if not marker.exists():
        marker.write_text("first attempt")
        raise RuntimeError("first attempt fails on purpose")
    return follow(scenario, path, **params)


def twist(scenario, path, speed: float = 3.0, turn: float = 0.1):
    """Drives the unicycle model: a constant twist."""
    from inspatio_ros.agents.runner import TwistCommand

    return lambda obs: TwistCommand(linear_x=speed, angular_z=turn)


def slow(scenario, path, seconds: float = 0.25, **params):
    """``follow`` that takes ``seconds`` of wall time per call (a stack slower than the cameras)."""
    import time

    inner = follow(scenario, path, **params)

    def act(obs):
        time.sleep(seconds)
        return inner(obs)

    return act
