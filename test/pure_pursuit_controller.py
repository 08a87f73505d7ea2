"""A separate controller process for the closed-loop test: pure pursuit on the recorded path
(inspatio_ros.agents.controllers.PurePursuit, the library's baseline steering).

Reads the node's /odom, publishes ackermann_msgs/AckermannDriveStamped on /ackermann_cmd (through
the built-in DDS transport: a pip-only rclpy has no ackermann_msgs), counts the images that keep
arriving, and writes a JSON report: sim seconds driven, distance, max cross-track error, image rate.

usage: pure_pursuit_controller.py WORLD CONFIG REPORT [--sim-seconds S]
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np


def recorded_reference_path(world_path: str, config_path: str):
    """The path base_link follows in replay of the world with the config's rig (the library's ReferencePath)."""
    from inspatio_ros.agents.path import ReferencePath
    from inspatio_ros.config import read_parameters
    from inspatio_ros.sim.rig import load_rig
    from inspatio_ros.sim.simulator import Simulator
    from inspatio_ros.world import World

    params = read_parameters(config_path)
    rig = load_rig({k: v for k, v in params.items() if k.startswith("cameras.")})
    return ReferencePath.from_simulator(Simulator(World.load(world_path), rig, device="cpu"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("world")
    ap.add_argument("config")
    ap.add_argument("report")
    ap.add_argument("--sim-seconds", type=float, default=30.0)
    ap.add_argument("--speed", type=float, default=8.0)
    ap.add_argument("--wheelbase", type=float, default=2.7)
    args = ap.parse_args()

    from inspatio_ros.ros.dds import DdsTransport
    from inspatio_ros.ros.messages import stamp_seconds
    from inspatio_ros.ros.transport import SENSOR_IN, SENSOR_OUT, Qos

    from inspatio_ros.agents.controllers import PurePursuit

    path = recorded_reference_path(args.world, args.config)
    pursuit = PurePursuit(path, wheelbase=args.wheelbase)

    t = DdsTransport("pure_pursuit")
    odoms, images = [], []
    t.create_subscription("nav_msgs/msg/Odometry", "/odom", odoms.append, Qos())
    t.create_subscription("sensor_msgs/msg/Image", "/front/image_raw", images.append, SENSOR_OUT)
    cmd_pub = t.create_publisher("ackermann_msgs/msg/AckermannDriveStamped", "/ackermann_cmd", SENSOR_IN)
    Cmd = t.message_class("ackermann_msgs/msg/AckermannDriveStamped")
    Drive = t.message_class("ackermann_msgs/msg/AckermannDrive")
    Header = t.message_class("std_msgs/msg/Header")

    deadline = time.monotonic() + 60
    while (cmd_pub.subscription_count() == 0 or not odoms) and time.monotonic() < deadline:
        t.spin_once(0.05)
    if not odoms:
        raise SystemExit("no odometry from the node")

    start_time = None
    last_odom_stamp = None
    errors, positions, image_stamps = [], [], []
    progress = 0.0
    while True:
        t.spin_once(0.005)
        image_stamps.extend(stamp_seconds(m.header.stamp) for m in images)
        images.clear()
        if not odoms:
            continue
        odom = odoms[-1]
        odoms.clear()
        now = stamp_seconds(odom.header.stamp)
        if now == last_odom_stamp:
            continue
        last_odom_stamp = now
        start_time = now if start_time is None else start_time
        p = odom.pose.pose.position
        q = odom.pose.pose.orientation
        yaw = math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))
        pos = np.array([p.x, p.y])
        point = path.project(pos[0], pos[1], near_s=progress, window=20.0)
        progress = point.s
        errors.append(abs(point.cross_track))
        positions.append(pos)
        steer = pursuit.steering(pos[0], pos[1], yaw, odom.twist.twist.linear.x, progress)
        speed = 0.0 if progress + pursuit.lookahead(odom.twist.twist.linear.x) >= path.length else args.speed
        cmd_pub.publish(Cmd(header=Header(stamp=odom.header.stamp, frame_id="base_link"),
                            drive=Drive(speed=float(speed), steering_angle=float(steer))))
        if now - start_time >= args.sim_seconds:
            break

    elapsed = last_odom_stamp - start_time
    in_window = [s for s in image_stamps if start_time <= s <= last_odom_stamp]
    distance = float(np.linalg.norm(np.diff(np.array(positions), axis=0), axis=1).sum())
    report = {"sim_seconds": elapsed, "distance_m": distance, "max_cross_track_m": max(errors),
              "mean_cross_track_m": float(np.mean(errors)), "image_hz": len(in_window) / max(elapsed, 1e-9),
              "odometry_messages": len(errors)}
    with open(args.report, "w") as f:
        json.dump(report, f)
    print(json.dumps(report))
    t.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
