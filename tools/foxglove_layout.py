"""Write config/foxglove_layout.json: the Foxglove layout for `inspatio-ros run --foxglove`.

Made with foxglove-sdk's typed layout classes (foxglove.layouts: the app's layout schema), so
its panel settings are the app's own names: the camera image with its calibration, the depth
image (turbo colour map), a 3D view following base_link with the cloud and the recorded path,
the Teleop panel on /cmd_vel at 10 Hz, service buttons (pause, resume, seek to the start,
reset) and /status. The default camera is ``front``; ``--camera NAME`` writes one for another.
test/test_foxglove.py fails when the shipped file is not what this writes.

usage: python tools/foxglove_layout.py [--camera front] [--check] [-o config/foxglove_layout.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = ROOT / "config" / "foxglove_layout.json"
sys.path.insert(0, str(ROOT))

# Teleop buttons: m/s forward and back, rad/s left and right (mode control's unicycle model).
FORWARD_MS, BACK_MS, TURN_RADS = 5.0, -2.0, 0.5


def layout_json(camera: str = "front", node: str = "inspatio_ros") -> str:
    import foxglove.layouts as fl

    from inspatio_ros.live.foxglove import CMD_VEL_TOPIC, PATH_TOPIC, STATUS_TOPIC
    from inspatio_ros.record.frame_messages import camera_topic_names

    topics = camera_topic_names(camera)
    camera_panel = fl.ImagePanel(title=f"camera {camera}", config=fl.ImageConfig(image_mode=fl.ImageModeConfig(
        image_topic=topics["compressed"], calibration_topic=topics["camera_info"])))
    depth_panel = fl.ImagePanel(title=f"depth {camera} (m)", config=fl.ImageConfig(image_mode=fl.ImageModeConfig(
        image_topic=topics["depth"], calibration_topic=topics["camera_info"], color_mode="colormap",
        color_map="turbo", min_value=0.0, max_value=40.0)))
    scene = fl.ThreeDeePanel(title="world", config=fl.ThreeDeeConfig(
        follow_tf="base_link", follow_mode="follow-pose", topics={
            topics["points"]: fl.BaseRendererPointCloudTopicSettings(visible=True, color_mode="rgb", point_size=3.0),
            PATH_TOPIC: fl.BaseRendererRosMarkerTopicSettings(visible=True),
        }))
    teleop = fl.TeleopPanel(title="drive (mode control)", config=fl.TeleopConfig(
        topic=CMD_VEL_TOPIC, publish_rate=10.0,
        up_button=fl.TeleopButton(field="linear-x", value=FORWARD_MS),
        down_button=fl.TeleopButton(field="linear-x", value=BACK_MS),
        left_button=fl.TeleopButton(field="angular-z", value=TURN_RADS),
        right_button=fl.TeleopButton(field="angular-z", value=-TURN_RADS)))

    def button(kind: str, request: str, text: str):
        return fl.SplitItem(content=fl.ServiceCallPanel(title=text, config=fl.ServiceCallConfig(
            service_name=f"/{node}/{kind}", request_payload=request, button_text=text, layout="horizontal")))

    controls = fl.SplitContainer(direction="column", items=[
        fl.SplitItem(proportion=3, content=teleop),
        button("pause", '{"data": true}', "pause"), button("resume", "{}", "resume"),
        button("seek", '{"data": 0.0}', "seek (s)"), button("reset", "{}", "reset"),
        fl.SplitItem(proportion=2, content=fl.RawMessagesPanel(title="status", config=fl.RawMessagesConfig(
            topic_path=STATUS_TOPIC))),
    ])
    views = fl.SplitContainer(direction="column", items=[
        fl.SplitItem(proportion=3, content=camera_panel),
        fl.SplitItem(proportion=2, content=fl.SplitContainer(direction="row", items=[
            fl.SplitItem(content=depth_panel), fl.SplitItem(content=scene)])),
    ])
    layout = fl.Layout(content=fl.SplitContainer(direction="row", items=[
        fl.SplitItem(proportion=3, content=views), fl.SplitItem(proportion=1, content=controls)]))
    return json.dumps(json.loads(layout.to_json()), indent=1) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camera", default="front")
    parser.add_argument("--check", action="store_true", help="only say whether the file is current (exit 1 if not)")
    parser.add_argument("-o", "--output", default=str(LAYOUT))
    args = parser.parse_args()
    text, out = layout_json(args.camera), Path(args.output)
    if args.check:
        current = out.exists() and out.read_text() == text
        print(f"{out} is " + ("current" if current else "stale: run tools/foxglove_layout.py"))
        return 0 if current else 1
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
