"""``inspatio-ros run [WORLD]``: the options of the simulator node's command; ros/run_cli.py runs it."""
from __future__ import annotations

from ..ros.run_cli import TRANSPORTS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run the ROS 2 sensor-simulator node on a world (default: the embedded one)",
        description="Run the simulator node: renders the camera rig of the config at the ego pose and publishes "
                    "images, depth, clouds, camera_info, TF, odometry and /clock over ROS 2 (rclpy if installed, "
                    "else the built-in ROS 2 wire-compatible DDS transport).")
    p.add_argument("world", nargs="?", default=None, help="world file (.safetensors); none: the embedded default world")
    p.add_argument("--config", action="append", default=[], metavar="YAML",
                   help="ROS 2 parameter file (inspatio_ros: ros__parameters: ...); repeat to layer files")
    p.add_argument("--transport", choices=TRANSPORTS, default="auto",
                   help="auto: rclpy when it imports, else dds")
    p.add_argument("--mode", choices=("replay", "pose", "control", "trajectory"), default=None,
                   help="ego source (overrides the config's 'mode'); default replay")
    p.add_argument("--param", "-p", action="append", default=[], metavar="NAME:=VALUE",
                   help="set one parameter, e.g. -p clock.rate:=2.0 (YAML value syntax)")
    p.add_argument("--lockstep", action="store_true", help="render once per pose / ~/step request")
    p.add_argument("--namespace", default="", help="ROS namespace of the node and its relative topics")
    p.add_argument("--node-name", default="inspatio_ros", help="node name (default inspatio_ros)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many wall seconds")
    p.add_argument("--frames", type=int, default=None, help="stop after this many rendered frames")
    p.add_argument("--record", default=None, metavar="DIR",
                   help="record everything published into DIR (new), a rosbag2 recording with MCAP storage "
                        "(parameter record.dir; split with -p record.split_mb:=... / record.split_s:=...)")
    p.add_argument("--foxglove", nargs="?", type=int, const=8765, default=None, metavar="PORT",
                   help="serve a live view to Foxglove on ws://127.0.0.1:PORT (8765 without a number; parameters "
                        "foxglove.*): camera JPEGs, depth, clouds, TF, odometry, the recorded path; its Teleop panel "
                        "drives the ego in --mode control; layout config/foxglove_layout.json")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..ros.run_cli import collect_parameters, run as run_node

    params = collect_parameters(args.config, args.param, world=args.world, mode=args.mode, lockstep=args.lockstep,
                                device=getattr(args, "device", "auto"), record=args.record,
                                foxglove=args.foxglove)
    return run_node(params, transport=args.transport, node_name=args.node_name, namespace=args.namespace,
                    duration=args.duration, frames=args.frames)
