"""A fingerprint of the held-out frames, recorded at build time so that ``eval --gt DIR`` can tell
whether DIR holds the recording the world was built from.

Not a cryptographic hash of the files: eval decodes the truth again, possibly from another copy
of the recording (the image folder of a world built from its video or bag, a video decoded by
another FFmpeg, a world built with ``--max-size``), and none of these are bit-identical. Each
fingerprinted frame is kept as a 16x16 RGB thumbnail (box average). A uniform shift of each
colour channel is taken out before comparing, since re-encoding moves all levels together
(kitti06's video.mp4 is 2.8 levels darker than its PNGs). Then two thumbnails of one frame differ
by 0.3-2 levels on average (kitti06 PNG vs its mp4v video 0.3; a 160x96 synthetic street's PNGs
vs their CRF-17 video 0.7-0.8, vs ``--max-size 100`` 1.6-2.0), the neighbouring frame of the same
recording by 5.5-7 (kitti06: 9.5-13), another street (another seed) by 19-22, the street
mirrored by 24-29.
"""
from __future__ import annotations

import base64

import numpy as np

THUMB_SIZE = 16
MAX_FRAMES = 6           # evenly spread over the held-out frames; ~1 KB of metadata each
# Mean absolute difference (grey levels of 255) above which a thumbnail is another picture:
# between a re-decoded or rescaled copy (<= 2) and the next frame of a moving camera (>= 5.5).
TOLERANCE = 4.0
METHOD = f"box thumbnail {THUMB_SIZE}x{THUMB_SIZE} rgb8"


def thumbnail(image: np.ndarray) -> np.ndarray:
    """(THUMB_SIZE, THUMB_SIZE, 3) uint8 box average of an RGB image of any size."""
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((THUMB_SIZE, THUMB_SIZE),
                                                                          Image.Resampling.BOX), np.uint8)


def heldout_fingerprint(load, positions, indices) -> dict | None:
    """The fingerprint of up to MAX_FRAMES of the held-out frames: ``load(p)`` gives the RGB frame at
    position ``p`` of the build's frame set, ``indices[p]`` its number in the whole input (what
    eval loads it by). None when nothing is held out."""
    positions = np.asarray(positions, dtype=np.int64)
    if len(positions) == 0:
        return None
    pick = positions[np.unique(np.linspace(0, len(positions) - 1, min(MAX_FRAMES, len(positions))).round().astype(int))]
    return {"method": METHOD, "frames": [int(indices[p]) for p in pick],
            "thumbnails": [base64.b64encode(thumbnail(load(int(p))).tobytes()).decode("ascii") for p in pick]}


def compare_fingerprint(record: dict, load_by_index, name_of) -> str | None:
    """None when the frames ``load_by_index(frame number)`` match the recorded fingerprint, else
    the first difference in words (``name_of(frame number)`` names the frame). A record of an
    unknown method is not checked."""
    if not isinstance(record, dict) or record.get("method") != METHOD:
        return None
    for index, text in zip(record.get("frames", []), record.get("thumbnails", [])):
        recorded = np.frombuffer(base64.b64decode(text), np.uint8).reshape(THUMB_SIZE, THUMB_SIZE, 3)
        delta = thumbnail(load_by_index(int(index))).astype(np.float32) - recorded
        delta -= delta.reshape(-1, 3).mean(axis=0)          # a uniform shift per channel (re-encoding)
        diff = float(np.abs(delta).mean())
        if diff > TOLERANCE:
            return (f"held-out frame {name_of(int(index))} differs from the one the world was built with "
                    f"(mean difference {diff:.1f} of 255 on a {THUMB_SIZE}x{THUMB_SIZE} thumbnail, "
                    f"at most {TOLERANCE:g} for the same picture)")
    return None
