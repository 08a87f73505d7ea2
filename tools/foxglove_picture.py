"""Draw docs/images/foxglove_live_view.png from what a Foxglove client receives from the live view.

No browser can be installed from the package registries here (Chromium comes from Google's
download servers, and the Foxglove app is not a registry package), so this draws the panels of
config/foxglove_layout.json itself, from the messages the reference Foxglove client
(test/foxglove_client, @foxglove/ws-protocol on node) received from a FoxgloveView on the default
world: the decoded JPEG camera image, the depth image in the turbo colour map (0..40 m, as the
layout), and a top-down 3D panel (cloud points moved into the map frame with /tf_static and /tf,
the /recorded_path line and the ego) beside the /status fields. Every pixel comes from a received
message; nothing is drawn from the session directly.

usage: python tools/foxglove_picture.py [--time 2.0] [-o docs/images/foxglove_live_view.png]
"""
from __future__ import annotations

import argparse
import io
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))

CAMERA_TOPICS = {"/front/image_raw/compressed": "sensor_msgs/msg/CompressedImage",
                 "/front/depth/image": "sensor_msgs/msg/Image", "/front/points": "sensor_msgs/msg/PointCloud2",
                 "/tf": "tf2_msgs/msg/TFMessage", "/tf_static": "tf2_msgs/msg/TFMessage",
                 "/recorded_path": "visualization_msgs/msg/Marker",
                 "/status": "inspatio_ros_interfaces/msg/SimStatus"}


def transform_matrix(t) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    q, v = t.transform.rotation, t.transform.translation
    out = np.eye(4)
    out[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    out[:3, 3] = [v.x, v.y, v.z]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", type=float, default=2.0, help="seconds of the recording shown")
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "images" / "foxglove_live_view.png"))
    args = parser.parse_args()

    import cv2
    from PIL import Image

    from foxglove_helpers import FoxgloveClient, client_ready
    from inspatio_ros.demo import ensure_default_world
    from inspatio_ros.live.foxglove import FoxgloveView
    from inspatio_ros.record.recorder import typestore
    from inspatio_ros.sim.rig import load_rig
    from inspatio_ros.sim.session import SimSession
    from inspatio_ros.sim.settings import FoxgloveSettings, SessionSettings
    from inspatio_ros.world import World

    reason = client_ready()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    rig = load_rig({"cameras.names": ["front"], "cameras.front.width": 640, "cameras.front.height": 360,
                    "cameras.front.hfov_deg": 90.0, "cameras.front.xyz": [0.0, 0.0, 1.5],
                    "cameras.front.rpy": [0.0, 0.0, 0.0], "cameras.front.outputs": ["image", "depth", "points"]})
    session = SimSession(World.load(ensure_default_world(verbose=False)), rig,
                         SessionSettings(lockstep=True, device="cpu"))
    store = typestore()
    with FoxgloveView(session, FoxgloveSettings(port=0), world_name="default") as view, \
            FoxgloveClient(view.port) as client:
        client.wait_for(lambda ev: ev["ev"] == "advertise")
        client.send(op="subscribe", topics=list(CAMERA_TOPICS), keep=1000)
        client.wait_for(lambda ev: ev["ev"] == "message" and ev["topic"] == "/recorded_path")
        session.seek(args.time)
        view.publish(session.step())
        for topic in ("/front/image_raw/compressed", "/front/depth/image", "/front/points", "/tf", "/status"):
            client.wait_for(lambda ev, topic=topic: ev["ev"] == "message" and ev["topic"] == topic, 60)
        time.sleep(0.5)
        got = {topic: store.deserialize_cdr(client.messages(topic)[-1][1], msgtype)
               for topic, msgtype in CAMERA_TOPICS.items()}

    rgb = np.asarray(Image.open(io.BytesIO(bytes(got["/front/image_raw/compressed"].data))).convert("RGB"))
    h, w = rgb.shape[:2]
    dmsg = got["/front/depth/image"]
    depth = np.frombuffer(bytes(dmsg.data), "<f4").reshape(dmsg.height, dmsg.width)
    scaled = np.nan_to_num(np.clip(depth / 40.0, 0, 1) * 255, nan=0).astype(np.uint8)
    depth_rgb = cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO)[..., ::-1]
    depth_rgb[~np.isfinite(depth)] = 0

    # 3D panel from above: cloud (optical frame) -> base_link (tf_static) -> map (tf).
    frames = {t.child_frame_id: (t.header.frame_id, transform_matrix(t))
              for msg in (got["/tf_static"], got["/tf"]) for t in msg.transforms}

    def map_from(frame: str) -> np.ndarray:
        out = np.eye(4)
        while frame in frames:
            parent, T = frames[frame]
            out, frame = T @ out, parent
        return out

    cmsg = got["/front/points"]
    cloud = np.frombuffer(bytes(cmsg.data), "<f4").reshape(-1, 4)
    ok = np.isfinite(cloud[:, :3]).all(axis=1)
    xyz = (map_from(cmsg.header.frame_id) @ np.c_[cloud[ok, :3], np.ones(ok.sum())].T).T[:, :3]
    packed = cloud[ok, 3].view(np.uint32)
    colors = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.uint8)
    path = np.array([[p.x, p.y] for p in got["/recorded_path"].points])
    ego = map_from("base_link")
    panel = np.full((h, w, 3), 34, np.uint8)
    head = ego[:2, :2] @ [1.0, 0.0]
    span = 16.0                                   # metres from the centre to the panel's top and bottom
    centre = ego[:2, 3] + 0.8 * span * head       # what lies ahead of the ego
    scale = min(h, w) / (2 * span)

    def px(xy: np.ndarray) -> np.ndarray:        # map x right, y up
        return np.c_[w / 2 + (xy[:, 0] - centre[0]) * scale, h / 2 - (xy[:, 1] - centre[1]) * scale]

    for gx in np.arange(math.floor((centre[0] - 2 * span) / 5) * 5, centre[0] + 2 * span, 5.0):
        x = int(px(np.array([[gx, 0.0]]))[0, 0])
        cv2.line(panel, (x, 0), (x, h), (52, 52, 52), 1)
    for gy in np.arange(math.floor((centre[1] - 2 * span) / 5) * 5, centre[1] + 2 * span, 5.0):
        y = int(px(np.array([[0.0, gy]]))[0, 1])
        cv2.line(panel, (0, y), (w, y), (52, 52, 52), 1)
    pts = px(xyz[:, :2]).astype(int)
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    order = np.argsort(xyz[inside, 2])                    # higher points drawn last
    panel[pts[inside][order, 1], pts[inside][order, 0]] = colors[inside][order]
    cv2.polylines(panel, [px(path).astype(np.int32)], False, (255, 153, 26), 2, cv2.LINE_AA)
    a = px(ego[None, :2, 3])[0]
    b = px((ego[:2, 3] + 3.0 * head)[None])[0]
    cv2.arrowedLine(panel, tuple(int(v) for v in a), tuple(int(v) for v in b), (80, 220, 120), 3, cv2.LINE_AA, 0, 0.35)

    status = got["/status"]
    side = np.full((h * 2 + 24, 300, 3), 28, np.uint8)
    lines = ["Teleop  /cmd_vel  10 Hz", "  up  +5 m/s   down -2 m/s", "  left/right  +-0.5 rad/s", "",
             "services /inspatio_ros/...", "  pause  resume  seek  reset", "", "/status",
             f"  world        {status.world}", f"  sim_time     {status.sim_time:.2f} s",
             f"  rate         {status.rate:g}", f"  paused       {str(status.paused).lower()}",
             f"  mode         {status.mode}", f"  achieved_hz  {status.achieved_hz:.1f}"]
    for i, text in enumerate(lines):
        cv2.putText(side, text, (12, 40 + 26 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (225, 225, 225), 1, cv2.LINE_AA)

    def titled(img: np.ndarray, title: str) -> np.ndarray:
        bar = np.full((24, img.shape[1], 3), 48, np.uint8)
        cv2.putText(bar, title, (8, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (235, 235, 235), 1, cv2.LINE_AA)
        return np.vstack([bar, img])

    half = (w // 2, h // 2)
    bottom = np.hstack([titled(cv2.resize(depth_rgb, half), "depth front (m), turbo 0..40"),
                        titled(cv2.resize(panel, half), "3D from above: points, path, ego")])
    left = np.vstack([titled(rgb, "camera front: /front/image_raw/compressed"), bottom])
    side = titled(cv2.resize(side, (300, left.shape[0] - 24)), "drive (mode control) / status")
    picture = np.hstack([left, np.full((left.shape[0], 4, 3), 20, np.uint8), side])
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(args.output, optimize=True)
    print(f"wrote {args.output} ({picture.shape[1]}x{picture.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
