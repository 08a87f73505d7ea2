"""``inspatio-ros eval WORLD --gt DIR``: render the held-out frames and compare with the truth.

Reports PSNR and SSIM against the held-out frames' real images, depth AbsRel where DIR has depth
maps, coverage (fraction of pixels the world saw, before hole filling) and, where DIR is a
synthetic scene (``scene.json``) whose ground truth can be rendered at any pose, PSNR at lateral
shifts of -2, -1, +1 and +2 m (along the camera's x axis, right positive).

``--generator refiner`` scores the refined images (the world's ``WORLD.generator.safetensors``,
or ``--generator-weights``) and reports the raw render's scores beside them under ``raw``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .ingest.fingerprint import compare_fingerprint
from .ingest.sources import DepthMaps, FrameSet, open_input
from .metrics import depth_abs_rel, psnr, ssim
from .progress import progress
from .render import Renderer, RenderSettings
from .video import fitted_size, write_png
from .world import World

LATERAL_SHIFTS_M = (-2.0, -1.0, 1.0, 2.0)


@dataclass
class EvalReport:
    frames: int = 0
    psnr: float | None = None
    ssim: float | None = None
    depth_absrel: float | None = None
    # Estimated poses only: depth AbsRel after the trajectory's similarity alignment (the world's
    # depth times its scale to the truth): the depth's shape, without the scale error of the
    # camera-height estimate, which depth_absrel includes.
    depth_absrel_aligned: float | None = None
    coverage: float | None = None
    shift_psnr: dict[str, float] | None = None
    ate_rel: float | None = None    # estimated poses only: trajectory error / path length
    per_frame: list[dict] = field(default_factory=list)
    generator: str = "none"
    raw: dict | None = None         # with a generator: the raw render's psnr, ssim, shift_psnr
    truth_mismatch: str | None = None   # evaluate(force=True): why the truth looked like another recording

    def as_json(self) -> dict:
        def clean(v):
            return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(v, 5)

        return {
            "psnr": clean(self.psnr), "ssim": clean(self.ssim), "depth_absrel": clean(self.depth_absrel),
            **({} if self.depth_absrel_aligned is None else {"depth_absrel_aligned": clean(self.depth_absrel_aligned)}),
            "coverage": clean(self.coverage),
            "shift_psnr": None if self.shift_psnr is None else {k: clean(v) for k, v in self.shift_psnr.items()},
            "ate_rel": clean(self.ate_rel),
            "frames": self.frames,
            "generator": self.generator,
            **({} if self.raw is None else {"raw": {
                k: (None if v is None else {kk: clean(vv) for kk, vv in v.items()} if isinstance(v, dict) else clean(v))
                for k, v in self.raw.items()}}),
            **({} if self.truth_mismatch is None else {"truth_mismatch": self.truth_mismatch}),
        }


def shifted_pose(c2w: np.ndarray, lateral_m: float) -> np.ndarray:
    """Move a camera along its own x axis (right) by ``lateral_m`` metres."""
    out = np.array(c2w, dtype=np.float64, copy=True)
    out[:3, 3] += lateral_m * out[:3, 0]
    return out


def check_ground_truth(world: World, fs: FrameSet) -> str | None:
    """Why the frames ``fs`` (eval's --gt, opened whole) are not the recording the world was built
    from, in words; None when they match as far as the world's provenance tells: the input's frame
    count and frame size, and the held-out frames' fingerprint (ingest/fingerprint.py). Worlds
    built before these were recorded are checked by their image size only. The recorded
    ``source_sha256`` is not used: it hashes the folder listing (any file added beside the frames
    changes it) and differs between copies of one recording (a bag and its image folder)."""
    prov = world.provenance or {}
    total = prov.get("source_frames")
    if isinstance(total, int) and not isinstance(total, bool) and len(fs) != total:
        return f"it has {len(fs)} frames, the world's recording had {total}"
    w, h = fs.native_size or fs.load(0).shape[1::-1]
    size = prov.get("source_size")
    if isinstance(size, list) and len(size) == 2:
        if (w, h) != tuple(size):
            return f"its frames are {w}x{h}, the world's recording was {size[0]}x{size[1]}"
    else:
        max_size = (prov.get("settings") or {}).get("max_size")
        expected = fitted_size(w, h, max_size if isinstance(max_size, int) else None)
        if expected != (world.intrinsics.width, world.intrinsics.height):
            return (f"its frames are {w}x{h}, the world was built from "
                    f"{world.intrinsics.width}x{world.intrinsics.height} frames"
                    + (f" (--max-size {max_size})" if max_size else ""))
    record = prov.get("heldout_fingerprint")
    if record is not None:
        return compare_fingerprint(record, fs.load, lambda i: fs.names[i] if 0 <= i < len(fs) else str(i))
    return None


def evaluate(world: World, gt_dir: str | Path, *, device: str = "auto", shifts: bool = True,
             save_dir: str | Path | None = None, settings: RenderSettings | None = None,
             refiner=None, force: bool = False) -> EvalReport:
    """Render the held-out frames (and lateral shifts) and score them; ``refiner``: a
    generator.Refiner applied to every render before scoring (the raw scores go to ``raw``).
    Ground truth that is not the world's recording (check_ground_truth) is an InputError unless
    ``force``; then it is scored and the report's ``truth_mismatch`` says why it looked wrong."""
    if len(world.heldout_c2w) == 0:
        raise InputError("the world has no held-out frames",
                         "build it with --holdout K to keep frames out for evaluation")
    gt_dir = Path(gt_dir)
    fs = open_input(gt_dir)
    rectification = None
    if world.info.get("lens") is not None and len(fs):
        # A world built from a distorted camera: its truth is the recording rectified the same way.
        from .ingest.undistort import Rectification

        h, w = fs.load(0).shape[:2]
        rectification = Rectification.from_record(world.info["lens"], w, h)
        fs = rectification.frameset(fs)
    source = world.provenance.get("source", "its provenance's 'source'")
    if int(world.heldout_index.max()) >= len(fs):
        raise InputError(f"ground truth {gt_dir} has {len(fs)} frames; the world holds out frame "
                         f"{int(world.heldout_index.max())}", f"give the folder the world was built from ({source})")
    mismatch = check_ground_truth(world, fs)
    if mismatch is not None and not force:
        raise InputError(f"ground truth {gt_dir} is not the world's recording: {mismatch}",
                         f"give the folder the world was built from ({source}), or pass --force to score it anyway")
    depth_maps = DepthMaps(fs.depth_dir, fs.names) if fs.depth_dir is not None else None
    scene = None
    if shifts and (gt_dir / "scene.json").exists():
        from .synth.generate import load_scene

        scene = load_scene(gt_dir)

    # A world whose poses were estimated lives in its own frame: score its trajectory against the
    # truth after a similarity alignment, and use that alignment to place the shifted views.
    estimated = str(world.info.get("pose_source", "")).startswith("estimated")
    gt_c2w = None
    world_to_truth_scale = 1.0
    if estimated and fs.poses is not None:
        from .ingest.odometry import ate_rel, umeyama
        from .posefile import read_poses

        gt_all, _ = read_poses(fs.poses)
        idx_all, est_all, _ = world.camera_path()      # in frame order: the path length follows it
        if len(gt_all) > idx_all.max():
            report_ate = ate_rel(est_all, gt_all[idx_all])
            world_to_truth_scale = umeyama(est_all[:, :3, 3], gt_all[idx_all, :3, 3])[0]
            gt_c2w = gt_all
    renderer = Renderer(world, device, settings)
    intr = world.intrinsics
    report = EvalReport(frames=len(world.heldout_c2w))
    if mismatch is not None:
        report.truth_mismatch = f"ground truth {gt_dir} is not the world's recording: {mismatch}"
    psnrs, ssims, covs, rel_sum, rel_n = [], [], [], 0.0, 0
    aligned_sum = 0.0
    raw_psnrs, raw_ssims = [], []
    shift_scores: dict[str, list[float]] = {f"{s:+.0f}": [] for s in LATERAL_SHIFTS_M}
    raw_shift: dict[str, list[float]] = {f"{s:+.0f}": [] for s in LATERAL_SHIFTS_M}
    save = Path(save_dir) if save_dir else None
    for k in progress(range(len(world.heldout_c2w)), desc="evaluating", unit="frame"):
        c2w, t, idx = world.heldout_c2w[k], float(world.heldout_time[k]), int(world.heldout_index[k])
        truth = fs.load(idx)
        if truth.shape[:2] != (intr.height, intr.width):
            # A world built with --max-size is scored at the truth's resolution (same camera).
            h, w = truth.shape[:2]
            if abs(w / intr.width - h / intr.height) > 0.01 * (w / intr.width):
                raise InputError(f"ground-truth frame {fs.names[idx]} is {w}x{h}, the world renders "
                                 f"{world.intrinsics.width}x{world.intrinsics.height}",
                                 "give the folder the world was built from")
            intr = world.intrinsics.scaled(w, h)
        out = renderer.render(renderer.cameras(c2w[None], intr), t)
        raw_rgb = None
        if refiner is not None:
            raw_rgb = out.rgb[0].cpu().numpy()
            out = refiner.refine_output(out)
        rgb, depth, cov = (a[0] for a in out.numpy())
        entry = {"frame": fs.names[idx], "psnr": psnr(rgb, truth), "ssim": ssim(rgb, truth),
                 "coverage": float(cov.mean())}
        if raw_rgb is not None:
            entry["raw_psnr"], entry["raw_ssim"] = psnr(raw_rgb, truth), ssim(raw_rgb, truth)
            raw_psnrs.append(entry["raw_psnr"])
            raw_ssims.append(entry["raw_ssim"])
        psnrs.append(entry["psnr"])
        ssims.append(entry["ssim"])
        covs.append(entry["coverage"])
        if depth_maps is not None:
            truth_depth = depth_maps.load(idx, truth.shape[:2])
            if rectification is not None:
                truth_depth = rectification.depth(truth_depth)
            rel, n = depth_abs_rel(depth, truth_depth)
            if n:
                entry["depth_absrel"] = rel
                rel_sum += rel * n
                rel_n += n
                if gt_c2w is not None:
                    aligned_sum += depth_abs_rel(depth * world_to_truth_scale, truth_depth)[0] * n
        if scene is not None and (not estimated or gt_c2w is not None):
            truth_c2w = gt_c2w[idx] if estimated else c2w
            poses = np.stack([shifted_pose(c2w, s / world_to_truth_scale) for s in LATERAL_SHIFTS_M])
            shifted_out = renderer.render(renderer.cameras(poses, intr), t)
            raw_shifted = shifted_out.rgb.cpu().numpy()
            shifted = raw_shifted if refiner is None else refiner.refine_output(shifted_out).rgb.cpu().numpy()
            for s, img, raw_img in zip(LATERAL_SHIFTS_M, shifted, raw_shifted):
                gt_rgb, _ = scene.render(shifted_pose(truth_c2w, s), intr, t)
                shift_scores[f"{s:+.0f}"].append(psnr(img, gt_rgb))
                raw_shift[f"{s:+.0f}"].append(psnr(raw_img, gt_rgb))
                if save is not None and k == 0:
                    write_png(save / f"shift{s:+.0f}m_render.png", img)
                    write_png(save / f"shift{s:+.0f}m_truth.png", gt_rgb)
        if save is not None:
            rows = [rgb, truth] if raw_rgb is None else [raw_rgb, rgb, truth]
            write_png(save / f"{fs.names[idx]}_compare.png", np.concatenate(rows, axis=0))
        report.per_frame.append(entry)
    report.psnr = float(np.mean(psnrs))
    report.ssim = float(np.mean(ssims))
    report.coverage = float(np.mean(covs))
    report.depth_absrel = rel_sum / rel_n if rel_n else None
    if gt_c2w is not None and rel_n:
        report.depth_absrel_aligned = aligned_sum / rel_n
    if scene is not None and all(shift_scores.values()):
        report.shift_psnr = {k: float(np.mean(v)) for k, v in shift_scores.items()}
    if gt_c2w is not None:
        report.ate_rel = report_ate
    if refiner is not None:
        report.generator = "refiner"
        report.raw = {"psnr": float(np.mean(raw_psnrs)), "ssim": float(np.mean(raw_ssims)),
                      "shift_psnr": ({k: float(np.mean(v)) for k, v in raw_shift.items()}
                                     if report.shift_psnr is not None else None)}
    return report
