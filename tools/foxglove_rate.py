"""How fast the Foxglove live view delivers one camera to a real client, render cost left out.

Renders one frame of a camera (default 1280x720 with image, depth and points) on the default
world, then hands it to a FoxgloveView (live/foxglove.py) ``--offer-hz`` times a second, restamped,
for ``--seconds``, while the Foxglove reference client (test/foxglove_client, @foxglove/ws-protocol
on node, another process) subscribes to what config/foxglove_layout.json shows and counts the
messages it receives. Prints per topic the messages per second and MB/s the client got, and the
CPU seconds the server process used per second. The node's own rate is the renderer's (see
docs/PERFORMANCE.md); this measures whether the view keeps up with it.

With ``--node`` it measures end to end instead: it starts ``inspatio-ros run --foxglove`` (built-in
DDS transport, default world, one camera of ``--size`` at ``--offer-hz``, ``--device``) and counts
what the client receives for ``--seconds`` after the first image: the renderer's rate included.

usage: python tools/foxglove_rate.py [--size 1280x720] [--seconds 20] [--offer-hz 30] [--json OUT]
       python tools/foxglove_rate.py --node --device cuda [--size 1280x720] [--seconds 20]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))

TOPICS = ["/front/image_raw/compressed", "/front/camera_info", "/front/depth/image", "/front/points", "/tf", "/odom"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--offer-hz", type=float, default=30.0, help="frames handed to the view per second")
    parser.add_argument("--jpeg-quality", type=int, default=80)
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument("--node", action="store_true", help="measure a running node end to end (render included)")
    parser.add_argument("--device", default="cpu", help="the node's renderer device (with --node)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    if args.node:
        return measure_node(args, width, height)

    from foxglove_helpers import FoxgloveClient, client_ready
    from inspatio_ros.demo import ensure_default_world
    from inspatio_ros.live.foxglove import FoxgloveView
    from inspatio_ros.sim.rig import load_rig
    from inspatio_ros.sim.session import SimSession
    from inspatio_ros.sim.settings import FoxgloveSettings, SessionSettings
    from inspatio_ros.world import World

    reason = client_ready()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    rig = load_rig({"cameras.names": ["front"], "cameras.front.width": width, "cameras.front.height": height,
                    "cameras.front.hfov_deg": 90.0, "cameras.front.xyz": [0.0, 0.0, 1.5],
                    "cameras.front.rpy": [0.0, 0.0, 0.0], "cameras.front.rate_hz": args.offer_hz,
                    "cameras.front.outputs": ["image", "depth", "points"]})
    session = SimSession(World.load(ensure_default_world(verbose=False)), rig,
                         SessionSettings(lockstep=True, device="cpu"))
    frame = session.step()
    view = FoxgloveView(session, FoxgloveSettings(port=0, jpeg_quality=args.jpeg_quality))
    client = FoxgloveClient(view.port)
    try:
        client.wait_for(lambda ev: ev["ev"] == "advertise")
        client.send(op="subscribe", topics=TOPICS, keep=0)
        time.sleep(1.0)
        period = 1.0 / args.offer_hz
        cpu0, start = os.times(), time.monotonic()
        n = 0
        while time.monotonic() - start < args.seconds:
            view.publish(dataclasses.replace(frame, stamp=frame.stamp + n * period))
            n += 1
            time.sleep(max(0.0, start + n * period - time.monotonic()))
        time.sleep(0.5)                            # the last frames on their way
        took = time.monotonic() - start
        cpu1 = os.times()
        stats = client.stats()
    finally:
        client.close()
        view.close()
    cpu = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / took
    result = {"size": args.size, "offered_hz": n / took, "seconds": took, "server_cpu_per_s": cpu,
              "frames_skipped": view.frames_skipped, "jpeg_quality": args.jpeg_quality,
              "topics": {t: {"hz": s["count"] / took, "mb_per_s": s["bytes"] / took / 1e6}
                         for t, s in stats.items()}}
    print(f"{args.size}: offered {result['offered_hz']:.1f} Hz for {took:.1f} s; server process CPU "
          f"{cpu:.2f} s/s; {view.frames_skipped} frames replaced before they were sent")
    for t, s in result["topics"].items():
        print(f"  {t:32s} {s['hz']:6.1f} Hz  {s['mb_per_s']:7.2f} MB/s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def measure_node(args, width: int, height: int) -> int:
    import signal
    import socket
    import subprocess

    from foxglove_helpers import FoxgloveClient, client_ready

    reason = client_ready()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    camera = [f"cameras.front.width:={width}", f"cameras.front.height:={height}",
              f"cameras.front.rate_hz:={args.offer_hz}", "cameras.front.outputs:=[image, depth, points]",
              f"foxglove.jpeg_quality:={args.jpeg_quality}"]
    node = subprocess.Popen([sys.executable, "-m", "inspatio_ros.cli", "--device", args.device, "run", "--transport",
                             "dds", "--foxglove", str(port), "-p", "cameras.names:=[front]",
                             *[a for c in camera for a in ("-p", c)]], cwd=ROOT)
    try:
        deadline = time.monotonic() + 600           # a fresh CUDA machine compiles the renderer first
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if node.poll() is not None or time.monotonic() > deadline:
                    print("the node did not start its Foxglove server", file=sys.stderr)
                    return 1
                time.sleep(1.0)
        with FoxgloveClient(port) as client:
            client.wait_for(lambda ev: ev["ev"] == "advertise", 60)
            client.send(op="subscribe", topics=TOPICS, keep=1)
            client.wait_for(lambda ev: ev["ev"] == "message" and ev["topic"] == TOPICS[0], 600)
            before, start = client.stats(), time.monotonic()
            time.sleep(args.seconds)
            after, took = client.stats(), time.monotonic() - start
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=60)
    result = {"size": args.size, "device": args.device, "requested_hz": args.offer_hz, "seconds": took,
              "topics": {t: {"hz": (s["count"] - before.get(t, {}).get("count", 0)) / took,
                             "mb_per_s": (s["bytes"] - before.get(t, {}).get("bytes", 0)) / took / 1e6}
                         for t, s in after.items()}}
    print(f"node, {args.size} on {args.device}, camera at {args.offer_hz:g} Hz, {took:.1f} s at the client:")
    for t, s in result["topics"].items():
        print(f"  {t:32s} {s['hz']:6.1f} Hz  {s['mb_per_s']:7.2f} MB/s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
