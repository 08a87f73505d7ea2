"""MVSSettings: every knob of the plane sweep, its filters and the propagation (dense_depth)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MVSSettings:
    max_size: int | None = None       # longer side matched (px); None: 640 on CPU, 1280 on CUDA
    planes: int = 64                  # hypotheses of the global sweep (uniform in inverse depth)
    pyramid_levels: int = 3           # the global sweep runs at 1 / 2^(levels-1) of the matching size
    slanted_planes: bool = True       # also sweep road- and facade-oriented planes (street scenes)
    refine_steps: int = 9             # hypotheses per finer level, across +-2 steps of the level below
    sources: int = 4                  # source frames per reference frame
    max_offset: int = 8               # sources come from at most this many frames away
    source_step: int = 2              # ... at multiples of this offset (more parallax per source)
    source_baseline: float = 1.6      # >0: the step instead follows the path: the whole
                                      # number of frames that moves the camera about this far (pose
                                      # units at a scene depth of 20, scaled with the scene's:
                                      # sweep.scene_length_unit; max_offset scales with it). 0: source_step as is
    best_k: int = 2                   # sources averaged per hypothesis (the best ones)
    window: int = 11                  # ZNCC window side (px, at the matching size)
    shift_window: int = 1             # >1: each pixel takes the best of the windows this far around
    near: float = 1.0                 # depth bounds when no landmarks give them (pose units); with
    far: float = 200.0                # landmarks the near bound is still at most ``near`` (scaled like source_baseline): the
                                      # odometry has no landmarks on the nearest surfaces
    min_texture: float = 0.012        # grey std (0..1) below which a window is texture-less
    max_cost: float = 0.45            # 1 - ZNCC of the winner above this: weak match, dropped
    max_ambiguity: float = 0.85       # winner / best cost away from it above this: ambiguous
    ambiguity_basin_px: float = 2.0   # "away from it": a hypothesis moving some source's pixel more
                                      # than this (px of the sweep's level) from the winner's, or
                                      # more than 2 sweep steps; in pixels the basin means the same
                                      # whatever the depth bounds (landmark bounds make steps fine)
    max_depth_uncertainty: float = 0.05  # relative depth change of a 0.5 px match error
    consistency_px: float = 1.5       # reprojection round trip allowed (px, matching size)
    consistency_depth: float = 0.03   # relative depth difference allowed in the round trip
    min_consistent: int = 1           # neighbours that must agree
    fill_holes_px: int = 24           # unknown regions up to this area (matching size) are filled
    fill_planes: float = 0.0          # unknown regions up to this share of the image whose rim is
                                      # one plane get that plane (texture-less walls, road)
    sky: bool = True                  # mark texture-less regions at the top without depth as +inf
    propagate: int = 2                # passes of depth propagation into unmeasured pixels (0: off)
    propagate_cost: float = 0.035     # mean |grey difference| (0..1) a propagated depth may leave
    propagate_shift_px: float = 0.0   # ... plus what a position error this large (px) leaves at the
                                      # window's grey gradient (propagate.photo_tolerance; 0: off)
    propagate_window: int = 5         # window (px) of that photometric check
    propagate_median: bool = True     # 5x5 median of the propagated inverse depths
    road_plane: bool = True           # fit the road plane below the camera; a candidate for propagation
    wall_candidates: bool = True      # propagation also continues walls along the direction of travel
    standing_candidates: bool = False  # ... and offers a surface standing on the road where the pixel's
                                      # column meets it: better per-frame depth on blank near cars, not
                                      # yet a better fused world (docs/notes/2026-12-05-depth.md)
    road_colour: float = 0.05         # no road candidate where the grey (0..1, 3x3 mean) differs by
                                      # more than this from the grey where its column meets the
                                      # road below (0: off): the blank side of a parked car is no road
    road_occlusion: float = 0.1       # no road candidate under a known surface nearer than the road
                                      # there by this much (relative; 0: off)
    under_road: float = 0.3           # matched depths this much (relative) beyond the road plane at
                                      # their pixel are dropped: nothing static is seen under the road
                                      # (lane lines along the epipolar lines match too far; 0: off)
    edge_recheck_px: int = 12         # matched pixels this close to a farther matched pixel (a depth
                                      # step) are re-decided by propagation's 5x5 check (0: off)
    edge_recheck_ratio: float = 1.25  # "farther": by this factor
    moving: bool = True               # detect objects moving along with the camera (needs the road plane)
    moving_min_area: float = 0.001    # share of the image a moving object must cover
    moving_min_height: float = 0.5    # ... and how tall it must stand on the road (pose units)
