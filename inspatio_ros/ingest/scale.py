"""The metric scale of poses from monocular odometry, which has none of its own.

Three sources, in this order:

- ``--scale-distance A,B,METRES``: frames A and B (frame numbers of the input) were METRES apart;
  the odometry's distance between them fixes the scale.
- ``--camera-height METRES`` (default 1.5 m, a car's dash camera): the camera's height above a
  flat ground seen below it. Points in the road region of the image (lower third, middle half
  of the columns: the odometry's landmarks there, and the region's own corners triangulated
  between nearby frames) are taken to lie on the ground; the densest half of their heights below
  the camera, along the ground's normal, is the camera height in odometry units.
- none: the world stays in odometry units and is flagged unscaled.

The camera-height model is checked before it is used (check_ground): it does not fit when the
road region holds too few points, when too few of them lie near one plane (a room, a drone
over clutter: no ground below the horizon), when the heights measured in different parts of the
clip disagree (the camera climbed, or what it saw below was not one ground), or when the
resulting speed is implausible for a camera carried by a vehicle or a person. No ground: the world
is left unscaled, with one warning naming --camera-height and --scale-distance; a ground that
fits poorly: the scale is kept and the same warning says why it is doubtful.

world.info entries (documented here, written by the build):

- ``scale``: how the poses were scaled, in words ("metric (...)" or "unscaled").
- ``unscaled``: True when nothing gave the world a metric scale (it is in odometry units, the
  first keyframes' baseline about one unit); False otherwise.
- ``scale_check``: the camera-height model's check (ground points, share near the plane,
  heights per part of the clip, median speed, verdict), when it ran.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..camera import Intrinsics
from ..errors import InputError
from .road import road_normals

# The camera height a build assumes without --camera-height: a car's dash camera.
DEFAULT_CAMERA_HEIGHT = 1.5
# Road-region points needed to measure a height (per segment, per part of the clip).
MIN_GROUND_POINTS = 20
# With --camera-height given, this many give a provisional scale for the dense road plane to refine.
MIN_PROVISIONAL_POINTS = 3
# Share of the road-region landmarks within GROUND_BAND of the densest height below which there
# is no ground plane (a road: most of them; a room's furniture and walls: few).
MIN_GROUND_SHARE = 0.35
GROUND_BAND = 0.15
# Parts of the clip whose camera heights differ by more than this (max/min - 1) disagree.
MAX_HEIGHT_DISAGREEMENT = 0.25
# A median speed above this (m/s; 250 km/h) is no camera carried by a car, robot or person.
MAX_PLAUSIBLE_SPEED = 70.0


def parse_scale_distance(text: str) -> tuple[int, int, float]:
    """``A,B,METRES`` (--scale-distance) as (frame A, frame B, metres); InputError when malformed."""
    parts = [p.strip() for p in str(text).split(",")]
    fix = "give --scale-distance A,B,METRES: two frame numbers and their distance in metres, e.g. 0,40,12.5"
    if len(parts) != 3:
        raise InputError(f"--scale-distance {text!r} is not A,B,METRES", fix)
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        raise InputError(f"--scale-distance {text!r}: frames {parts[0]!r} and {parts[1]!r} are not frame numbers",
                         fix) from None
    try:
        metres = float(parts[2])
    except ValueError:
        raise InputError(f"--scale-distance {text!r}: {parts[2]!r} is not a distance in metres", fix) from None
    check_scale_distance((a, b, metres))
    return a, b, metres


def check_scale_distance(value: tuple[int, int, float]) -> None:
    """InputError unless ``value`` is (frame A, frame B, metres) with A != B, both >= 0, metres > 0."""
    fix = "give --scale-distance A,B,METRES: two different frame numbers and their distance in metres (> 0)"
    try:
        a, b, metres = value
    except (TypeError, ValueError):
        raise InputError(f"scale_distance {value!r} is not (frame A, frame B, metres)", fix) from None
    if int(a) != a or int(b) != b or a < 0 or b < 0:
        raise InputError(f"--scale-distance frames {a}, {b} are not frame numbers (0, 1, ...)", fix)
    if a == b:
        raise InputError(f"--scale-distance names frame {a} twice", fix)
    if not (np.isfinite(metres) and metres > 0):
        raise InputError(f"--scale-distance distance {metres} m is not a positive distance", fix)


@dataclass
class GroundCheck:
    """Whether "a camera above a flat ground" fits the odometry: ``fits`` (a ground plane below
    the camera, heights that agree, a plausible speed), ``found`` (a ground plane at all),
    ``reasons`` when not, and the numbers behind it (world.info["scale_check"])."""

    found: bool
    fits: bool
    reasons: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)


def _in_road_region(pts: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """Pixels (N,2) in the road region: the lower third, the middle half of the columns."""
    return (pts[:, 1] > intr.height * 2 / 3) & (np.abs(pts[:, 0] - intr.cx) < intr.width / 4)


def ground_samples(result, intr: Intrinsics, load=None, pairs: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Heights (odometry units) below the camera, along the road's normal under it
    (road_normals), of points seen in the road region, and the frame each was measured from:
    the odometry's landmarks seen there, and, with ``load`` (frame i -> image), corners of the
    road region tracked into the next located frames and triangulated with the odometry's poses.
    The odometry keeps few landmarks on a road close below a low camera (5 on a street filmed
    0.8 m up: the road streams past too fast to be kept as landmarks); two-view triangulation of
    the road's own corners measures it there too. Only points below the camera."""
    up = road_normals(result.c2w, result.located)
    heights, frames = [], []
    for i in range(len(result.c2w)):
        if not result.located[i] or result.observations[i] is None:
            continue
        ids, pts = result.observations[i]
        if not len(ids):
            continue
        for t in np.asarray(ids)[_in_road_region(np.asarray(pts), intr)]:
            x = result.landmark_by_id.get(int(t))
            if x is not None:
                heights.append(float((result.c2w[i, :3, 3] - x) @ up[i]))
                frames.append(i)
    if load is not None:
        for i, h in _triangulated_road(result, intr, load, up, pairs):
            heights.extend(h)
            frames.extend([i] * len(h))
    h, f = np.asarray(heights, np.float64), np.asarray(frames, np.int64)
    keep = h > 0
    return h[keep], f[keep]


def _triangulated_road(result, intr: Intrinsics, load, up: np.ndarray, pairs: int):
    """(frame, heights) of road-region corners of up to ``pairs`` located frames, tracked (LK,
    forward-backward checked) into the next located frame of the same segment at least 2 frames
    on and triangulated with the odometry's poses; points that reproject more than 1 px off in
    either view, or lie behind either camera, are dropped."""
    import cv2

    n = len(result.c2w)
    seg = result.segment_of() if result.segments else np.zeros(n, np.int64)
    located = np.nonzero(result.located)[0]
    starts = located[np.linspace(0, max(len(located) - 3, 0), min(pairs, max(len(located) - 2, 0))).astype(int)]
    K = intr.K
    lk = dict(winSize=(21, 21), maxLevel=4, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    for i in dict.fromkeys(starts.tolist()):
        later = located[(located >= i + 2) & (seg[located] == seg[i])]
        if not len(later):
            continue
        j = int(later[0])
        images = [load(k) for k in range(i, j + 1)]
        gray = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) if im.ndim == 3 else im for im in images]
        mask = np.zeros(gray[0].shape, np.uint8)
        mask[int(intr.height * 2 / 3):, int(intr.cx - intr.width / 4):int(intr.cx + intr.width / 4)] = 255
        corners = cv2.goodFeaturesToTrack(gray[0], 400, 0.001, max(3, intr.width // 100), mask=mask)
        if corners is None:
            continue
        p0 = corners.reshape(-1, 2).astype(np.float32)
        p = p0.copy()
        ok = np.ones(len(p), bool)
        for a, b in zip(gray[:-1], gray[1:]):
            nxt, st, _ = cv2.calcOpticalFlowPyrLK(a, b, p, None, **lk)
            back, st2, _ = cv2.calcOpticalFlowPyrLK(b, a, nxt, None, **lk)
            ok &= (st.ravel() == 1) & (st2.ravel() == 1) & (np.linalg.norm(back - p, axis=1) < 0.5)
            p = nxt
        if ok.sum() < 10:
            continue
        w2c_i, w2c_j = np.linalg.inv(result.c2w[i]), np.linalg.inv(result.c2w[j])
        X = cv2.triangulatePoints(K @ w2c_i[:3], K @ w2c_j[:3], p0[ok].T.astype(np.float64),
                                  p[ok].T.astype(np.float64))
        X = (X[:3] / X[3]).T
        good = np.ones(len(X), bool)
        for w2c, uv in ((w2c_i, p0[ok]), (w2c_j, p[ok])):
            cam = X @ w2c[:3, :3].T + w2c[:3, 3]
            with np.errstate(divide="ignore", invalid="ignore"):
                proj = cam[:, :2] / cam[:, 2:] @ K[:2, :2].T + K[:2, 2]
            good &= (cam[:, 2] > 0) & (np.linalg.norm(proj - uv, axis=1) < 1.0)
        yield i, ((result.c2w[i, :3, 3] - X[good]) @ up[i]).tolist()


def densest_half(values: np.ndarray) -> float:
    """Median of the shortest interval holding half of ``values`` (the shorth): it follows the
    dense part of a distribution with a long tail on one side (kerbs, cars above the road)."""
    x = np.sort(np.asarray(values, np.float64))
    k = max(1, (len(x) + 1) // 2)
    widths = x[k - 1:] - x[:len(x) - k + 1]
    j = int(np.argmin(widths))
    return float(np.median(x[j:j + k]))


def check_ground(result, intr: Intrinsics, camera_height: float, samples=None) -> GroundCheck:
    """Check the camera-height model on monocular odometry ``result`` (see the module's text)
    with the ground ``samples`` (ground_samples; computed from the landmarks alone when None).
    Heights per part of the clip: up to three parts of each segment's located frames (each
    segment has its own scale, so parts are only compared within a segment)."""
    n = len(result.c2w)
    segments = result.segments or [(0, n - 1)]
    seg = result.segment_of() if result.segments else np.zeros(n, np.int64)
    all_h, at = ground_samples(result, intr) if samples is None else samples
    info: dict = {"camera_height_m": camera_height, "ground_points": int(len(all_h))}
    if len(all_h) < MIN_GROUND_POINTS:
        return GroundCheck(False, False, [f"only {len(all_h)} points seen below the horizon in the road region "
                                          "(no ground below the camera)"], info)
    shares, parts = [], []
    for k in range(len(segments)):
        frames = np.nonzero((seg == k) & result.located)[0]
        h = all_h[seg[at] == k]
        if len(h) < MIN_GROUND_POINTS:
            continue
        h0 = densest_half(h)
        shares.append((len(h), float(np.mean(np.abs(h - h0) < GROUND_BAND * h0))))
        for chunk in np.array_split(frames, min(3, max(1, len(frames) // 5))):
            hc = all_h[np.isin(at, chunk)]
            if len(hc) >= MIN_GROUND_POINTS:
                parts.append((k, densest_half(hc) / h0))
    share = float(sum(c * s for c, s in shares) / max(sum(c for c, _ in shares), 1))
    info["ground_share"] = round(share, 3)
    reasons = []
    if not shares or share < MIN_GROUND_SHARE:
        reasons.append(f"{100 * share:.0f} % of the {len(all_h)} points below the horizon lie near one plane "
                       f"(a road: {100 * MIN_GROUND_SHARE:.0f} % or more): no flat ground below the camera")
        return GroundCheck(False, False, reasons, info)
    disagreement = 0.0
    for k in {p[0] for p in parts}:
        rel = [r for j, r in parts if j == k]
        if len(rel) > 1:
            disagreement = max(disagreement, max(rel) / min(rel) - 1.0)
    info["height_disagreement"] = round(disagreement, 3)
    if disagreement > MAX_HEIGHT_DISAGREEMENT:
        reasons.append(f"the camera's height above the ground differs by {100 * disagreement:.0f} % between parts "
                       "of the clip (it climbed, or the ground below is not one plane)")
    return GroundCheck(True, not reasons, reasons, info)


def median_speed(c2w: np.ndarray, located: np.ndarray, times: np.ndarray) -> float:
    """Median speed (units/s) between consecutive located frames."""
    idx = np.nonzero(located)[0]
    if len(idx) < 2:
        return 0.0
    steps = np.linalg.norm(np.diff(c2w[idx, :3, 3], axis=0), axis=1)
    dt = np.diff(times[idx])
    ok = dt > 0
    return float(np.median(steps[ok] / dt[ok])) if ok.any() else 0.0


def frame_position(frame_numbers: np.ndarray, number: int, what: str) -> int:
    """Index among the build's frames of input frame ``number`` (InputError naming it when the
    build does not use that frame)."""
    hits = np.nonzero(np.asarray(frame_numbers) == number)[0]
    if not len(hits):
        lo, hi = int(np.min(frame_numbers)), int(np.max(frame_numbers))
        raise InputError(f"--scale-distance frame {number} ({what}) is not among the frames this build uses "
                         f"({len(frame_numbers)} frames, numbers {lo}..{hi})",
                         "give frame numbers of the input that the build uses (see --start, --end, --stride)")
    return int(hits[0])


@dataclass
class ScaleDecision:
    """The scales of the odometry's segments (None: unscaled), world.info["scale"] (``how``), the
    extra world.info entries (unscaled, scale_check) and warnings for the build report."""

    scales: list[float] | None
    how: str
    info: dict
    notes: list[str]


def decide_scale(result, intr: Intrinsics, times: np.ndarray, frame_numbers: np.ndarray,
                 camera_height: float | None, scale_distance: tuple[int, int, float] | None,
                 load=None) -> ScaleDecision:
    """Scale for monocular odometry ``result`` (OdometryResult) from --scale-distance, else the
    camera height (given, or DEFAULT_CAMERA_HEIGHT) when the ground check allows it, else none.
    ``load`` (frame i -> image): the frames, to triangulate the road's own corners too
    (ground_samples)."""
    nseg = max(1, len(result.segments))
    height = DEFAULT_CAMERA_HEIGHT if camera_height is None else float(camera_height)
    flags = ("--scale-distance A,B,METRES (two frames a known distance apart; --camera-height needs a flat ground "
             "seen below the camera)" if camera_height is not None else
             f"--camera-height METRES (assumed {DEFAULT_CAMERA_HEIGHT:g} m, a car's dash camera) or --scale-distance "
             "A,B,METRES (two frames a known distance apart)")
    if scale_distance is not None:
        check_scale_distance(scale_distance)
        a_no, b_no, metres = scale_distance
        a, b = frame_position(frame_numbers, a_no, "A"), frame_position(frame_numbers, b_no, "B")
        for i, no in ((a, a_no), (b, b_no)):
            if not result.located[i]:
                located = np.asarray(frame_numbers)[result.located]
                raise InputError(f"--scale-distance frame {no} was not located by the visual odometry (it "
                                 f"located {len(located)} frames, numbers {located.min()}..{located.max()}; the "
                                 "first ones wait for enough parallax)", "give two frames the odometry located")
        seg = result.segment_of() if result.segments else np.zeros(len(result.c2w), np.int64)
        if seg[a] != seg[b]:
            raise InputError(f"--scale-distance frames {a_no} and {b_no} lie in different odometry segments "
                             "(tracking was lost between them), whose scales are not related",
                             "give two frames of one segment (see the build report's poses)")
        dist = float(np.linalg.norm(result.c2w[a, :3, 3] - result.c2w[b, :3, 3]))
        if not dist > 1e-9:
            raise InputError(f"--scale-distance frames {a_no} and {b_no} are at the same odometry position",
                             "give two frames the camera moved between")
        notes = []
        if nseg > 1:
            notes.append(f"--scale-distance scales the odometry segment of frames {a_no} and {b_no}; the other "
                         f"{nseg - 1} segment(s) take the same factor, their scale is not measured")
        factor = metres / dist
        return ScaleDecision([factor] * nseg, f"metric (--scale-distance: frames {a_no} and {b_no} {metres:g} m apart)",
                             {"unscaled": False}, notes)
    samples = ground_samples(result, intr, load)
    check = check_ground(result, intr, height, samples)
    info: dict = {"scale_check": check.info}
    heights = samples[0]
    if not check.found and camera_height is not None and MIN_PROVISIONAL_POINTS <= len(heights) < MIN_GROUND_POINTS:
        # The user says there is a ground that far below; a handful of points on it (a blank road
        # close below a low camera) give a provisional scale, which the dense road plane of MVS
        # then measures again (depth.refine_scale_by_road_plane). Provisional, not unscaled: MVS
        # bounds its depths in pose units, and in odometry units the road close below is nearer
        # than its near bound.
        factor = height / densest_half(heights)
        check.info["verdict"] = "provisional"
        return ScaleDecision([factor] * nseg, f"metric (camera height {height:g} m above the road, provisional: "
                             f"{len(heights)} ground points)", {**info, "unscaled": False},
                             [f"only {len(heights)} points on the ground below the camera: the scale from the camera "
                              f"height {height:g} m is provisional until the dense depth's road plane measures it"])
    if not check.found:
        check.info["verdict"] = "no ground: unscaled"
        return ScaleDecision(None, "unscaled", {**info, "unscaled": True},
                             [f"the camera-above-a-road model does not fit ({'; '.join(check.reasons)}): the world is "
                              f"unscaled (odometry units, not metres); give {flags}, or --poses with metric poses"])
    scales = _segment_scales(result, height, samples)
    if scales is None:
        check.info["verdict"] = "no ground: unscaled"
        return ScaleDecision(None, "unscaled", {**info, "unscaled": True},
                             [f"no segment saw enough ground to measure the camera height: the world is unscaled "
                              f"(odometry units, not metres); give {flags}"])
    scaled = result.scaled_segments(scales, "camera height")
    speed = median_speed(scaled.c2w, scaled.located, times)
    check.info["median_speed_m_s"] = round(speed, 3)
    if speed > MAX_PLAUSIBLE_SPEED:
        check.fits = False
        check.reasons.append(f"the camera would move at {speed:.0f} m/s ({3.6 * speed:.0f} km/h)")
    how = f"metric (camera height {height:g} m above the road"
    how += ")" if len(scales) == 1 else f", each of {len(scales)} segments scaled by its own)"
    notes = []
    if check.fits:
        check.info["verdict"] = "fits"
        if camera_height is None:
            notes.append(f"scale from an assumed camera height of {DEFAULT_CAMERA_HEIGHT:g} m above the road (a car's "
                         "dash camera); give --camera-height METRES for another camera (a robot, a drone, a "
                         "hand-held phone)")
    else:
        check.info["verdict"] = "doubtful"
        how += "; doubtful: " + "; ".join(check.reasons)
        notes.append(f"the camera-above-a-road model fits poorly ({'; '.join(check.reasons)}): the scale from a "
                     f"camera height of {height:g} m is doubtful; give {flags}")
    return ScaleDecision(scales, how, {**info, "unscaled": False}, notes)


def _segment_scales(result, height: float, samples) -> list[float] | None:
    """One camera-height scale per odometry segment from the ground ``samples``; a segment with
    too few takes the median of the others'; None when none has enough."""
    n = len(result.c2w)
    segments = result.segments or [(0, n - 1)]
    seg = result.segment_of() if result.segments else np.zeros(n, np.int64)
    heights, at = samples
    scales: list[float | None] = []
    for k in range(len(segments)):
        h = heights[seg[at] == k]
        scales.append(height / densest_half(h) if len(h) >= MIN_GROUND_POINTS else None)
    known = [x for x in scales if x is not None]
    if not known:
        return None
    fallback = float(np.median(known))
    return [fallback if x is None else x for x in scales]
