"""The reference path an agent drives: the recorded path of ``base_link``, as a planar polyline.

A world's recording is the path a vehicle actually drove, so it is the reference every agent is
measured against: progress along it, how far off it (cross-track error), how turned against it
(heading error), and whether the ego is still in a corridor around it. All in the ``map`` frame
(REP-103: x forward, y left, z up) and in the x-y plane; the recorded z is ignored.

:class:`ReferencePath` resamples the path at an even arc-length spacing (default 0.25 m), drops
the recording's standstills (many frames at one spot would give zero-length segments and no
direction), and answers nearest-point lookups:

* globally, through a k-d tree of the vertices (O(log n)): the nearest vertices' neighbouring
  segments hold the nearest point of the polyline, because the vertices lie evenly along it;
* or in a window of arc length around a previous answer (``near_s``), which is what a vehicle
  driving along needs: on a path that passes one place twice (a loop, a return leg) the global
  nearest point may be the other pass; the window keeps progress on the pass being driven.

Signs: cross-track error is positive when the point lies to the LEFT of the path (the +y side of
the path's direction), heading error positive when the ego points left of the path's direction
(counter-clockwise), in [-pi, pi].
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

DEFAULT_SPACING_M = 0.25


@dataclass(frozen=True)
class PathPoint:
    """Where a query point lies relative to the path."""

    s: float                  # arc length of the nearest path point, metres from the start, in [0, length]
    cross_track: float        # signed distance to the path, metres, positive left of it
    x: float                  # the nearest path point, map frame
    y: float
    heading: float            # the path's direction there, rad (atan2 of its tangent)
    segment: int              # index of the segment holding the nearest point
    overrun: float            # metres beyond the path's first or last point along its direction (0 between them)

    @property
    def distance(self) -> float:
        """Unsigned distance from the query to the path (past an end: to that end)."""
        return math.hypot(self.cross_track, self.overrun)


@dataclass(frozen=True)
class PathErrors:
    """A pose measured against the path."""

    point: PathPoint
    heading_error: float      # ego yaw - path heading, wrapped to [-pi, pi], positive: pointing left of the path

    @property
    def s(self) -> float:
        return self.point.s

    @property
    def cross_track(self) -> float:
        return self.point.cross_track


def wrap_angle(angle):
    """Angle(s) wrapped to [-pi, pi)."""
    return (np.asarray(angle) + math.pi) % (2 * math.pi) - math.pi


class ReferencePath:
    """A planar polyline with arc length, evenly resampled; optionally the recording time of each vertex.

    ``points``: (N, 2) or (N, 3) positions in order of travel (z is dropped); ``times``: (N,)
    recording seconds of each point (optional, for :meth:`s_at_time`);
    ``spacing``: metres between the resampled vertices.
    """

    def __init__(self, points, times=None, spacing: float = DEFAULT_SPACING_M):
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] not in (2, 3):
            raise InputError(f"a reference path of shape {pts.shape}", "give (N, 2) or (N, 3) points in order of travel")
        if not np.isfinite(pts).all():
            raise InputError("the reference path holds NaN or infinity", "give finite points")
        if not (math.isfinite(spacing) and spacing > 0):
            raise InputError(f"reference path spacing {spacing!r} m", "give a spacing > 0 metres, e.g. 0.25")
        pts = pts[:, :2]
        step = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        # Standstills (repeated positions) carry no direction: keep the first of each run.
        moving = np.concatenate([[True], step > 1e-6])
        pts = pts[moving]
        all_times = None if times is None else np.asarray(times, dtype=np.float64).reshape(-1)
        if all_times is not None and len(all_times) != len(moving):
            raise InputError(f"{len(all_times)} path times for {len(moving)} points", "give one recording time per point")
        if all_times is not None and not (np.isfinite(all_times).all() and (np.diff(all_times) > 0).all()):
            raise InputError("the reference path's times are not finite and increasing", "give increasing times")
        all_s = np.concatenate([[0.0], np.cumsum(np.where(step > 1e-6, step, 0.0))])
        if len(pts) < 2:
            raise InputError("the reference path does not move (all its points lie within 1 um)",
                             "use a world whose recording drives somewhere")
        src_s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
        self.length = float(src_s[-1])
        count = max(2, int(math.ceil(self.length / spacing)) + 1)
        self.s = np.linspace(0.0, self.length, count)
        self.points = np.stack([np.interp(self.s, src_s, pts[:, 0]), np.interp(self.s, src_s, pts[:, 1])], axis=1)
        self.spacing = self.length / (count - 1)
        d = np.diff(self.points, axis=0)
        self._seg_len = np.linalg.norm(d, axis=1)
        self._seg_dir = d / self._seg_len[:, None]
        self.segment_heading = np.arctan2(self._seg_dir[:, 1], self._seg_dir[:, 0])
        # Recording time -> progress: every original point counts (a standstill holds s while time runs).
        self._time_s = None if all_times is None else (all_times, all_s)
        from scipy.spatial import cKDTree

        self._tree = cKDTree(self.points)

    # -- construction from a world ---------------------------------------------------------------
    @classmethod
    def from_simulator(cls, sim, samples_per_frame: int = 4, spacing: float = DEFAULT_SPACING_M) -> ReferencePath:
        """The path ``base_link`` follows in replay (the reference camera on the recorded camera),
        of a :class:`~inspatio_ros.sim.simulator.Simulator`; the recorded path is sampled
        ``samples_per_frame`` times between recorded frames (its poses interpolate smoothly)."""
        path = sim.path
        times = np.linspace(path.start, path.end, max(2, samples_per_frame * (len(path.times) - 1) + 1))
        points = np.array([sim.recorded_base_pose(t)[:3, 3] for t in times])
        return cls(points, times, spacing)

    @classmethod
    def from_session(cls, session, spacing: float = DEFAULT_SPACING_M) -> ReferencePath:
        """:meth:`from_simulator` of a :class:`~inspatio_ros.sim.session.SimSession`."""
        return cls.from_simulator(session.sim, spacing=spacing)

    # -- lookups ---------------------------------------------------------------------------------
    def point_at(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading) at arc length ``s`` (clamped to the path)."""
        s = float(np.clip(s, 0.0, self.length))
        i = int(np.clip(np.searchsorted(self.s, s, side="right") - 1, 0, len(self._seg_len) - 1))
        a = (s - self.s[i]) / self._seg_len[i]
        x, y = self.points[i] + a * (self.points[i + 1] - self.points[i])
        return float(x), float(y), float(self.segment_heading[i])

    def s_at_time(self, t: float) -> float:
        """Arc length reached at recording time ``t`` (needs ``times``; clamped to the recording)."""
        if self._time_s is None:
            raise ValueError("this path was made without times")
        return float(np.interp(t, *self._time_s))

    def project(self, x: float, y: float, near_s: float | None = None, window: float = 20.0) -> PathPoint:
        """The path point nearest to (x, y).

        ``near_s`` None: over the whole path (k-d tree, O(log n)). Else only within ``window``
        metres of arc length either side of ``near_s`` (O(window / spacing)): the answer for a
        vehicle that was at ``near_s`` a moment ago, which stays on its pass of a path that crosses
        itself.
        """
        q = np.array([float(x), float(y)])
        if near_s is None:
            k = min(len(self.points), 4)
            _, idx = self._tree.query(q, k=k)
            idx = np.atleast_1d(idx)
            segs = np.unique(np.clip(np.concatenate([idx - 1, idx]), 0, len(self._seg_len) - 1))
        else:
            lo = int(np.searchsorted(self.s, near_s - window, side="left")) - 1
            hi = int(np.searchsorted(self.s, near_s + window, side="right"))
            segs = np.arange(max(lo, 0), min(max(hi, lo + 2), len(self._seg_len)))
            if len(segs) == 0:   # near_s beyond the path: its nearest end segment
                segs = np.array([0 if near_s <= 0 else len(self._seg_len) - 1])
        a = self.points[segs]
        rel = q - a
        along = np.einsum("ij,ij->i", rel, self._seg_dir[segs])
        t = np.clip(along, 0.0, self._seg_len[segs])
        foot = a + t[:, None] * self._seg_dir[segs]
        dist2 = ((q - foot) ** 2).sum(axis=1)
        j = int(np.argmin(dist2))
        seg = int(segs[j])
        d = self._seg_dir[seg]
        r = rel[j]
        side = float(d[0] * r[1] - d[1] * r[0])          # z of direction x (q - a): + on the left
        overrun = 0.0
        if seg == 0 and along[j] < 0:
            overrun = float(-along[j])
        elif seg == len(self._seg_len) - 1 and along[j] > self._seg_len[seg]:
            overrun = float(along[j] - self._seg_len[seg])
        # Between the ends the error is the distance to the nearest point (a vertex, on the outside
        # of a bend, is farther than the perpendicular to either segment); past an end, the
        # perpendicular part, the overrun being the rest.
        cross = side if overrun > 0 else math.copysign(math.sqrt(float(dist2[j])), side)
        return PathPoint(s=float(self.s[seg] + t[j]), cross_track=cross, x=float(foot[j, 0]), y=float(foot[j, 1]),
                         heading=float(self.segment_heading[seg]), segment=seg, overrun=overrun)

    def errors(self, x: float, y: float, yaw: float, near_s: float | None = None, window: float = 20.0) -> PathErrors:
        """Cross-track and heading error of a pose (x, y, yaw) against the path (see :meth:`project`)."""
        p = self.project(x, y, near_s, window)
        return PathErrors(point=p, heading_error=float(wrap_angle(yaw - p.heading)))

    def in_corridor(self, x: float, y: float, half_width: float, near_s: float | None = None,
                    window: float = 20.0) -> bool:
        """Whether (x, y) lies within ``half_width`` metres of the path: a band around it closed by half
        discs at its ends (a vehicle that drives on past the end leaves the corridor ``half_width`` later)."""
        if not half_width > 0:
            raise InputError(f"corridor half-width {half_width!r} m", "give a half-width > 0 metres")
        p = self.project(x, y, near_s, window)
        return p.distance <= half_width
