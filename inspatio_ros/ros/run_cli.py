"""``inspatio-ros run [WORLD]``: the simulator node from the command line (and ``ros2 run``).

The argparse options are cli/run.py's; it hands their values to :func:`collect_parameters` and
:func:`run` here, which know nothing of argparse."""
from __future__ import annotations

import logging
import signal
import sys
import time
from typing import Any, Iterable

from ..errors import InputError

TRANSPORTS = ("auto", "rclpy", "dds")


def parse_param(text: str) -> tuple[str, Any]:
    import yaml

    if ":=" not in text:
        raise InputError(f"-p '{text}' is not NAME:=VALUE", "write it like -p clock.rate:=2.0")
    name, value = text.split(":=", 1)
    try:
        return name.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise InputError(f"-p {name}: value '{value}' is not valid YAML", "quote strings, e.g. -p world:=w.safetensors") from None


def collect_parameters(config_files: Iterable[str] = (), overrides: Iterable[str] = (), *,
                       world: str | None = None, mode: str | None = None, lockstep: bool = False,
                       device: str = "auto", record: str | None = None,
                       foxglove: int | None = None) -> dict[str, Any]:
    """The node's parameters from the command line: the ``--config`` files in order, then the
    ``-p NAME:=VALUE`` overrides, then the options that name a parameter (a world, a mode,
    ``--lockstep``, ``--record``, ``--foxglove``; the global ``--device`` unless a file or -p set one)."""
    from ..config import read_parameters

    params: dict[str, Any] = {}
    for path in config_files:
        params.update(read_parameters(path))
    for text in overrides:
        name, value = parse_param(text)
        params[name] = value
    if world:
        params["world"] = world
    if mode:
        params["mode"] = mode
    if lockstep:
        params["lockstep"] = True
    if record:
        params["record.dir"] = record
    if foxglove is not None:
        params["foxglove.port"] = foxglove
    if "device" not in params and device != "auto":
        params["device"] = device
    return params


def check_parameters(params: dict[str, Any]) -> None:
    """The node's parameter checks, run before the transport starts and the world loads, so that a
    bad -p or --config value is one error line at once (the node checks them again)."""
    from ..config import render_settings_from
    from ..sim.parameters import split_parameters
    from ..sim.lidar import load_lidars
    from ..sim.rig import check_sensors, load_rig

    settings, rig, render = split_parameters(params)
    render_settings_from(render, source="parameters")
    if rig:
        # Without cameras.* the recorded camera is used: its rate is the default one, as here.
        check_sensors(load_rig(rig), load_lidars(rig))
    if settings.record.dir:
        from ..record import check_record_dir

        check_record_dir(settings.record.dir)
    if settings.foxglove.port:
        from ..live.foxglove import check_port, import_foxglove

        import_foxglove()
        check_port(settings.foxglove.host, settings.foxglove.port)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[%(name)s] %(levelname)s: %(message)s")


def describe(node) -> str:
    from .all_outputs import camera_topics, lidar_topic

    s = node.session
    lines = [f"inspatio_ros node '{node.t.node_name}' on transport {node.t.name}: world {node.world_name}, "
             f"mode {s.mode}{' (lockstep)' if s.lockstep else ''}, device {s.sim.device}, "
             f"recording {s.path.start:.2f}..{s.path.end:.2f} s"]
    for cam in node.rig:
        topics = camera_topics(cam.name)
        outs = ", ".join(topics[o] if o in topics else o for o in ("camera_info", *cam.outputs))
        lines.append(f"  camera {cam.name}: {cam.width}x{cam.height} @ {cam.rate_hz:g} Hz -> {outs}")
    for lidar in s.lidars:
        lines.append(f"  lidar {lidar.name}: {lidar.model}, {len(lidar.elevations_deg)} x {lidar.columns} beams "
                     f"@ {lidar.rate_hz:g} Hz ({lidar.layout} layout) -> {lidar_topic(lidar.name)}")
    return "\n".join(lines)


def run_node(transport, params: dict[str, Any], duration: float | None = None, frames: int | None = None) -> int:
    """Run the node until the duration, the frame count, SIGINT or SIGTERM; 0 when it ended so.

    A signal ends it cleanly within 2 s: spin() returns within a tick, the camera writers are
    stopped (joined, or killed after 1 s), their shared memory unlinked, every DDS entity deleted.
    A signal during start-up (loading the world, compiling the renderer) stops the start-up."""
    import gc

    from ..runtime import keep_freed_memory, return_free_memory
    from .node import SimNode

    node = None
    signalled: list[int] = []
    spinning = False

    def _stop(signum, _frame):
        signalled.append(signum)
        if not spinning:
            # Still starting (loading the world, compiling the renderer): unwind now rather than
            # after the start-up; the finally blocks clean up.
            raise KeyboardInterrupt
        node.stop()

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        keep_freed_memory()
        node = SimNode(transport, params)
        print(describe(node), file=sys.stderr, flush=True)
        if node.session.sim.device.type == "cuda":
            print("warming up the renderer (the first start on a machine compiles CUDA kernels: up to a few "
                  "minutes)", file=sys.stderr, flush=True)
            print(f"renderer ready in {node.warm_up():.1f} s", file=sys.stderr, flush=True)
        # Start-up (compiling the renderer, loading the world) peaks far above what the loop needs, and
        # keep_freed_memory would hold that peak for the node's whole life.
        return_free_memory()
        started = time.monotonic()
        spinning = True
        node.spin(duration_s=duration, max_frames=frames)
        took = time.monotonic() - started
        print(f"published {node.stats.frames_published} frames in {took:.1f} s "
              f"({node.stats.frames_published / max(took, 1e-9):.1f} Hz)", file=sys.stderr)
    except KeyboardInterrupt:
        if not signalled:
            raise
        print("stopped during start-up", file=sys.stderr)
    finally:
        if node is not None:
            node.close()
        for s, h in previous.items():
            signal.signal(s, h)
    if signalled:
        # The process is about to exit: what is left is the interpreter's teardown, whose garbage
        # collection over torch's objects took 0.6-0.8 s of the 2 s a signalled node has to exit
        # (measured on the 2-core VM: `import torch` exits in ~0.9 s, after gc.freeze() in ~0.35 s).
        gc.freeze()
    return 0


def run(params: dict[str, Any], transport: str = "auto", node_name: str = "inspatio_ros", namespace: str = "",
        duration: float | None = None, frames: int | None = None) -> int:
    """``inspatio-ros run``: check ``params`` (see :func:`collect_parameters`), start the transport
    and run the node on it until the duration, the frame count or a signal."""
    from .transport import make_transport

    setup_logging()
    check_parameters(params)
    transport = make_transport(transport, node_name, namespace)
    try:
        if transport.name == "rclpy":
            # --ros-args parameters (none from this CLI) come first; ours override them.
            params = {"use_sim_time": transport.use_sim_time(), **transport.parameter_overrides(), **params}
        return run_node(transport, params, duration, frames)
    finally:
        transport.shutdown()


def ros_main(argv: list[str] | None = None) -> int:
    """Entry point for ``ros2 run inspatio_ros sim_node --ros-args --params-file FILE``."""
    from .rclpy_transport import RclpyTransport

    setup_logging()
    argv = sys.argv if argv is None else argv
    transport = RclpyTransport("inspatio_ros", args=argv)
    try:
        return run_node(transport, {"use_sim_time": transport.use_sim_time(), **transport.parameter_overrides()})
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        transport.shutdown()
