"""Where a node frame's time goes: render, device->host copy, message build, DDS write (one process).

Runs the node in this process on the DDS transport (optionally with a subscriber process that
takes every image, so the writes do real work) and prints per-stage milliseconds per frame.

usage: python bench/node_profile.py WORLD [--size 1920x1080] [--cameras 3] [--seconds 8] [--subscriber]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SUBSCRIBER = """
import sys, time
sys.path.insert(0, {root!r})
from inspatio_ros.runtime import keep_freed_memory
keep_freed_memory()
from inspatio_ros.ros.dds import DdsTransport
from inspatio_ros.ros.transport import SENSOR_OUT
t = DdsTransport("profile_sub")
n = [0]
for cam in {names!r}:
    for topic in (f"/{{cam}}/image_raw", f"/{{cam}}/depth/image"):
        t.create_subscription("sensor_msgs/msg/Image", topic, lambda m: n.__setitem__(0, n[0] + 1), SENSOR_OUT)
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    t.spin_once(0.01)
print("subscriber received", n[0], "images", flush=True)
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("world")
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--cameras", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--subscriber", action="store_true")
    ap.add_argument("--points", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 50))

    from inspatio_ros.ros import node as node_mod
    from inspatio_ros.ros.dds import DdsTransport
    from inspatio_ros.runtime import keep_freed_memory
    from node_bench import rig_parameters

    keep_freed_memory()
    w, h = (int(v) for v in args.size.split("x"))
    params = {**rig_parameters(args.cameras, (w, h), 60.0, args.points), "device": args.device,
              "world": args.world}
    names = params["cameras.names"]
    sub = None
    if args.subscriber:
        sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER.format(root=str(ROOT), names=names,
                                                                        seconds=args.seconds + 40)])
    t = DdsTransport("inspatio_ros")
    node = node_mod.SimNode(t, params)

    # Time each publish call by wrapping the publishers (build time = frame time - publish time).
    write_ms = defaultdict(list)
    for cam, pubs in node.out.cam_pubs.items():
        for kind, pub in pubs.items():
            orig = pub.publish

            def timed(msg, orig=orig, kind=kind):
                t0 = time.perf_counter()
                orig(msg)
                write_ms[kind].append((time.perf_counter() - t0) * 1e3)
            pub.publish = timed
    print(f"warming up ({args.size} x {args.cameras}, device {node.session.sim.device})", flush=True)
    node.spin(duration_s=max(5.0, args.seconds / 2))
    for v in (node.session.stats.render_ms, node.stats.publish_ms):
        v.clear()
    write_ms.clear()
    frames0 = node.stats.frames_published
    t0 = time.perf_counter()
    node.spin(duration_s=args.seconds)
    took = time.perf_counter() - t0
    frames = node.stats.frames_published - frames0
    print(f"frames {frames} in {took:.1f} s = {frames / took:.1f} Hz per camera")
    print(f"render + host copy: {np.mean(node.session.stats.render_ms):.1f} ms/frame (main thread)")
    print(f"build + publish:    {np.mean(node.stats.publish_ms):.1f} ms/frame (publisher thread)")
    for kind, v in sorted(write_ms.items()):
        print(f"  write {kind:12s} {np.mean(v):6.2f} ms/message ({len(v)} messages)")
    node.close()
    t.shutdown()
    if sub is not None:
        sub.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
