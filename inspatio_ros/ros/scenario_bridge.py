"""The scenario controller ``ros2``: an external ROS 2 stack drives, over DDS, in lockstep.

For each frame the scenario runner (agents/runner.py) renders, the bridge publishes what the node
would (each camera's outputs, /tf, /odom, /clock, /tf_static once; the node's own publishers,
ros/outputs.py, on the built-in DDS transport) on the scenario's own ROS_DOMAIN_ID, then waits for
the stack's answer on ``/ackermann_cmd`` (ackermann_msgs/AckermannDriveStamped) or ``/cmd_vel``
(geometry_msgs/Twist): a command stamped at or after the frame's stamp (a stack stamps its
command with the odometry it answers, as use_sim_time stacks do), or an unstamped one that
arrived after the frame went out. Sim time stands still while it waits, so a slow stack sees
every frame; a stack that does not answer within ``response_timeout`` wall seconds leaves the
previous command in force (counted in ``timeouts``), one that never answers within
``startup_timeout`` fails the scenario.

Params (``controller: {type: ros2, params: {...}}``):

* ``launch``: a shell command that starts the stack (run with ROS_DOMAIN_ID set, its output in
  ``OUT/<scenario>/ros2_stack.log``, stopped with SIGTERM at the end); without it the stack must
  already run on the domain.
* ``domain_id``: the DDS domain. Default: a free one of 100-199, starting at 100 + a hash of the
  scenario name, so the scenarios of a sweep running side by side on one machine never hear each
  other. A scenario holds its domain (an advisory lock file in ``<tmp>/inspatio_ros_domains``) until
  it ends; a given ``domain_id`` that another scenario on this machine holds fails the scenario
  with one clear error. Machines of one LAN still share DDS discovery: give each machine's stacks
  ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` or distinct ids.
* ``response_timeout`` (s, default 2.0), ``startup_timeout`` (s, default 60).
"""
from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import tempfile
import threading
import time
import zlib
from dataclasses import replace
from pathlib import Path

from ..errors import InputError

log = logging.getLogger("inspatio_ros")
REPUBLISH_S = 0.5           # the first frame goes out again this often until the stack answers


AUTO_DOMAINS = range(100, 200)    # outside the 0-99 people use by hand; all < 232 (Fast DDS's ports)


def default_domain(name: str) -> int:
    """Where the search for a free domain for scenario ``name`` starts (spreads a sweep's names)."""
    return AUTO_DOMAINS[zlib.crc32(name.encode()) % len(AUTO_DOMAINS)]


def domain_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / "inspatio_ros_domains"


def claim_domain(preferred: int, *, fixed: bool, where: str):
    """Hold a ROS domain for one scenario on this machine: ``(domain, lock file)``; closing the file
    (or the process ending) frees it. ``fixed``: ``preferred`` or an error; else the first free
    domain of AUTO_DOMAINS from ``preferred`` on."""
    import fcntl

    folder = domain_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    start = AUTO_DOMAINS.index(preferred) if preferred in AUTO_DOMAINS else 0
    candidates = [preferred] if fixed else [AUTO_DOMAINS[(start + k) % len(AUTO_DOMAINS)]
                                             for k in range(len(AUTO_DOMAINS))]
    for domain in candidates:
        lock = open(folder / f"{domain}.lock", "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return domain, lock
    if fixed:
        raise InputError(f"{where}: domain_id {preferred} is in use by another scenario on this machine",
                         "give each scenario that runs at the same time its own domain_id, or leave it out "
                         "to get a free one")
    raise InputError(f"{where}: all ROS domains {AUTO_DOMAINS.start}-{AUTO_DOMAINS.stop - 1} are in use by "
                     "scenarios on this machine", "run fewer ros2 scenarios at once on this machine")


class Ros2Controller:
    """A scenario controller whose commands come from a ROS 2 stack (see the module docstring)."""

    def __init__(self, scenario, path, *, out_dir, launch: str = "", domain_id: int | None = None,
                 response_timeout: float = 2.0, startup_timeout: float = 60.0):
        from ..agents.controllers import AckermannCommand
        from ..agents.runner import TwistCommand

        self._Ackermann, self._Twist = AckermannCommand, TwistCommand
        where = f"scenario {scenario.name}: controller ros2"
        if domain_id is not None and (isinstance(domain_id, bool) or not isinstance(domain_id, int)
                                      or not 0 <= domain_id <= 232):
            raise InputError(f"{where}: domain_id = {domain_id!r}", "give a ROS_DOMAIN_ID from 0 to 232")
        self._where = where
        self._requested_domain = domain_id
        self.domain_id = default_domain(scenario.name) if domain_id is None else domain_id
        self._domain_lock = None
        for name, value in (("response_timeout", response_timeout), ("startup_timeout", startup_timeout)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"{where}: {name} = {value!r}", f"give {name} in seconds > 0")
        self.response_timeout, self.startup_timeout = float(response_timeout), float(startup_timeout)
        self.scenario, self.out_dir = scenario, Path(out_dir)
        self.timeouts = 0
        self._lock = threading.Lock()
        self._latest = None                  # (command, stamp or None, monotonic arrival)
        self._outputs = self._transport = self._process = None
        self._last_command = None
        self._published_at = 0.0
        self._launch = launch

    # -- set-up on the first frame (the session exists then) -----------------------------------
    def _start(self, session) -> None:
        from ..sim.settings import NodeSettings
        from .dds import DdsTransport
        from .outputs import NodeOutputs
        from .transport import SENSOR_IN

        self.domain_id, self._domain_lock = claim_domain(self.domain_id, fixed=self._requested_domain is not None,
                                                         where=self._where)
        settings = NodeSettings()
        settings = replace(settings, publish=replace(settings.publish, writer_process="off", status_hz=0.0,
                                                     diagnostics_hz=0.0))
        self._transport = DdsTransport("inspatio_ros", domain_id=self.domain_id)
        self._outputs = NodeOutputs(self._transport, settings, session, self.scenario.name)
        self._transport.create_subscription("ackermann_msgs/msg/AckermannDriveStamped", "ackermann_cmd",
                                            self._on_ackermann, SENSOR_IN)
        self._transport.create_subscription("geometry_msgs/msg/Twist", "cmd_vel", self._on_twist, SENSOR_IN)
        if self._launch:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            logfile = open(self.out_dir / "ros2_stack.log", "ab")
            env = dict(os.environ, ROS_DOMAIN_ID=str(self.domain_id))
            self._process = subprocess.Popen(self._launch, shell=True, env=env, stdout=logfile,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            logfile.close()
            log.info("scenario %s: started the ROS 2 stack (pid %d) on domain %d", self.scenario.name,
                     self._process.pid, self.domain_id)

    def _on_ackermann(self, msg) -> None:
        from .messages import stamp_seconds

        d = msg.drive
        cmd = self._Ackermann(steering=float(d.steering_angle), speed=float(d.speed),
                              acceleration=float(d.acceleration))
        with self._lock:
            self._latest = (cmd, stamp_seconds(msg.header.stamp) or None, time.monotonic())

    def _on_twist(self, msg) -> None:
        cmd = self._Twist(linear_x=float(msg.linear.x), angular_z=float(msg.angular.z))
        with self._lock:
            self._latest = (cmd, None, time.monotonic())

    # -- each frame ---------------------------------------------------------------------------
    def __call__(self, obs):
        if obs.frame is None or obs.session is None:
            raise RuntimeError("the ros2 controller needs the frame and session in the observation")
        if self._outputs is None:
            self._start(obs.session)
        frame = obs.frame
        self._publish(frame)
        published = last_sent = time.monotonic()
        first = self._last_command is None
        deadline = published + (self.startup_timeout if first else self.response_timeout)
        while True:
            if first and time.monotonic() - last_sent >= REPUBLISH_S:
                # Until the stack answers once its readers may not have matched our writers yet
                # (discovery takes a moment, and the stack may still be starting): the first frame
                # again, same stamp, so it is one frame to the stack however often it arrives.
                self._publish(frame)
                last_sent = time.monotonic()
            with self._lock:
                latest = self._latest
            if latest is not None:
                cmd, stamp, arrived = latest
                fresh = stamp >= frame.stamp - 1e-6 if stamp is not None else arrived >= published
                if fresh:
                    self._last_command = cmd
                    return cmd
            if self._process is not None and self._process.poll() is not None and latest is None:
                raise RuntimeError(f"the ROS 2 stack exited with code {self._process.returncode} before its first "
                                   f"command (its output: {self.out_dir / 'ros2_stack.log'})")
            if time.monotonic() >= deadline:
                break
            self._transport.spin_once(0.005)
        if first:
            raise RuntimeError(f"no command on /ackermann_cmd or /cmd_vel (domain {self.domain_id}) within "
                               f"{self.startup_timeout:g} s of the first frame")
        self.timeouts += 1
        return self._last_command

    def _publish(self, frame) -> None:
        self._outputs.publish(frame)
        self._outputs.publish_clock(frame.stamp, force=True)
        self._outputs.flush()

    def close(self) -> None:
        try:
            if self._outputs is not None:
                self._outputs.close()
        finally:
            if self._process is not None and self._process.poll() is None:
                os.killpg(self._process.pid, signal.SIGTERM)
                try:
                    self._process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(self._process.pid, signal.SIGKILL)
                    self._process.wait()
            if self._transport is not None:
                self._transport.shutdown()
            if self._domain_lock is not None:
                self._domain_lock.close()
                self._domain_lock = None


def ros2_controller(scenario, path, *, out_dir, **params) -> Ros2Controller:
    """The factory the scenario runner calls for ``controller: ros2``."""
    return Ros2Controller(scenario, path, out_dir=out_dir, **params)
