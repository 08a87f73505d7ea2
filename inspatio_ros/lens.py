"""Lens distortion models of ROS camera_info (REP 104, image_pipeline), both ways.

Models and the order of ``D`` (the ROS / OpenCV order):

* ``plumb_bob`` (5): k1, k2, p1, p2, k3. Brown-Conrady: radial polynomial + tangential terms.
* ``rational_polynomial`` (8): k1, k2, p1, p2, k3, k4, k5, k6. The radial factor is
  (1 + k1 r^2 + k2 r^4 + k3 r^6) / (1 + k4 r^2 + k5 r^4 + k6 r^6).
* ``equidistant`` (4): k1, k2, k3, k4 (OpenCV's fisheye model). A ray at angle theta from the
  optical axis lands at distance theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 +
  k4 theta^8) from the principal point (normalised units); rays beyond 90 degrees are valid.

The pixel of a ray is ``K @ [x_d, y_d, 1]`` where (x_d, y_d) is the distorted normalised point.

Going from a distorted pixel back to its ray (``Lens.unproject``) has no closed form: it is
solved by Newton's method and each point says whether it converged. A point counts only where the
solution is on the monotonic part of the model (beyond the radius where the radial mapping folds
back, two rays share a pixel and the model is not a lens any more) and, for the fisheye, inside
its field of view.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError

# Coefficient count of each model (ROS camera_info D length).
MODEL_SIZES = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
COEFFICIENT_NAMES = {
    "plumb_bob": ("k1", "k2", "p1", "p2", "k3"),
    "rational_polynomial": ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"),
    "equidistant": ("k1", "k2", "k3", "k4"),
}
# A fisheye camera sees at most this many degrees across (the widest production lenses).
MAX_FISHEYE_FOV_DEG = 190.0
# Newton's method: a point converged when the model maps its solution within this many
# normalised units of the point (1e-9 of the focal length: far below a pixel for any camera).
CONVERGED_RESIDUAL = 1e-9
NEWTON_ITERATIONS = 40


@dataclass(frozen=True)
class Lens:
    """A distortion model and its coefficients; ``fov_deg``: the full field of view a fisheye
    camera sees (rays beyond half of it are not imaged; None for the pinhole models)."""

    model: str
    D: tuple[float, ...]
    fov_deg: float | None = None

    @classmethod
    def parse(cls, model, D, what: str = "distortion", fov_deg=None) -> "Lens":
        """A checked Lens; any bad entry is an InputError naming ``what``."""
        if not isinstance(model, str) or model not in MODEL_SIZES:
            close = difflib.get_close_matches(str(model), list(MODEL_SIZES), n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise InputError(f"{what}: unknown distortion model {model!r}",
                             f"{hint}give one of {', '.join(MODEL_SIZES)}")
        n = MODEL_SIZES[model]
        names = ", ".join(COEFFICIENT_NAMES[model])
        if isinstance(D, (str, bytes)) or not hasattr(D, "__len__"):
            raise InputError(f"{what}: D = {D!r} is not a list of numbers", f"give {n} numbers: {names}")
        try:
            values = tuple(float(v) for v in D)
        except (TypeError, ValueError):
            raise InputError(f"{what}: D = {list(D)!r} is not a list of numbers", f"give {n} numbers: {names}") from None
        if len(values) != n:
            raise InputError(f"{what}: model {model} takes {n} coefficients ({names}), D has {len(values)}",
                             f"give exactly {n} numbers in that order")
        if not all(math.isfinite(v) for v in values):
            raise InputError(f"{what}: D = {list(values)} holds NaN or infinity", "give finite numbers")
        if model == "equidistant":
            fov = 180.0 if fov_deg is None else fov_deg
            if not isinstance(fov, (int, float)) or isinstance(fov, bool) or not math.isfinite(fov) \
                    or not 0.0 < fov <= MAX_FISHEYE_FOV_DEG:
                raise InputError(f"{what}: fisheye field of view {fov!r} degrees is not valid",
                                 f"give a field of view above 0 and at most {MAX_FISHEYE_FOV_DEG:g} degrees")
            fov_deg = float(fov)
        elif fov_deg is not None:
            raise InputError(f"{what}: a field of view ({fov_deg}) is given for a {model} lens",
                             "fov_deg is for the equidistant (fisheye) model; leave it out")
        lens = cls(model, values, fov_deg)
        if lens._fold_radius() < 1e-3:
            raise InputError(f"{what}: {model} D = {list(values)} folds back at the image centre",
                             "check the coefficients' order and signs (ROS order: " + names + ")")
        return lens

    @property
    def is_fisheye(self) -> bool:
        return self.model == "equidistant"

    @property
    def is_identity(self) -> bool:
        """No distortion (a pinhole camera written as plumb_bob with zeros)."""
        return not self.is_fisheye and not any(self.D)

    def as_dict(self) -> dict:
        out = {"distortion_model": self.model, "D": list(self.D)}
        if self.fov_deg is not None:
            out["fov_deg"] = self.fov_deg
        return out

    @classmethod
    def from_dict(cls, data: dict, what: str = "distortion") -> "Lens":
        return cls.parse(data.get("distortion_model"), data.get("D"), what, data.get("fov_deg"))

    # -- the forward model ---------------------------------------------------------------------
    def _radial(self, r2: np.ndarray) -> np.ndarray:
        d = self.D
        num = 1.0 + r2 * (d[0] + r2 * (d[1] + r2 * d[4]))
        if self.model == "rational_polynomial":
            den = 1.0 + r2 * (d[5] + r2 * (d[6] + r2 * d[7]))
            return num / den
        return num

    def theta_d(self, theta):
        """Equidistant model: the distorted radius (normalised units) of a ray theta radians off axis."""
        k1, k2, k3, k4 = self.D
        t2 = theta * theta
        return theta * (1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))

    def distort(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) undistorted normalised points (x/z, y/z) -> distorted normalised points."""
        xy = np.asarray(xy, np.float64)
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        if self.is_fisheye:
            r = np.sqrt(r2)
            scale = np.where(r > 1e-12, self.theta_d(np.arctan(r)) / np.maximum(r, 1e-12), 1.0)
            return xy * scale[..., None]
        _k1, _k2, p1, p2 = self.D[:4]
        radial = self._radial(r2)
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([xd, yd], -1)

    def project_rays(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) rays in the optical frame -> (distorted normalised points (N, 2), valid (N,)).
        Pinhole models: valid in front of the camera and inside the fold radius; fisheye: inside
        the field of view and the monotonic part of theta_d."""
        rays = np.asarray(rays, np.float64)
        x, y, z = rays[..., 0], rays[..., 1], rays[..., 2]
        if self.is_fisheye:
            rho = np.hypot(x, y)
            theta = np.arctan2(rho, z)
            theta_d = self.theta_d(theta)
            unit = np.where(rho[..., None] > 1e-12, np.stack([x, y], -1) / np.maximum(rho, 1e-12)[..., None], 0.0)
            valid = theta <= min(math.radians(self.fov_deg) / 2.0, self._fold_radius())
            return unit * theta_d[..., None], valid
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = np.stack([x / z, y / z], -1)
        valid = (z > 1e-9) & (np.hypot(xy[..., 0], xy[..., 1]) <= self._fold_radius())
        xy = np.where(valid[..., None], xy, 0.0)
        return self.distort(xy), valid

    # -- the inverse ---------------------------------------------------------------------------
    def unproject(self, xy_d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) distorted normalised points -> (unit rays (N, 3), valid (N,)): Newton's method,
        a point valid only where it converged on the monotonic part of the model (and, fisheye,
        inside the field of view). Invalid rays are NaN."""
        xy_d = np.asarray(xy_d, np.float64).reshape(-1, 2)
        if self.is_fisheye:
            rays, valid = self._unproject_fisheye(xy_d)
        else:
            xy, valid = self._undistort_newton(xy_d)
            rays = np.concatenate([xy, np.ones((len(xy), 1))], 1)
            rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        rays[~valid] = np.nan
        return rays, valid

    def undistort(self, xy_d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) distorted normalised points -> (undistorted normalised points (N, 2), valid);
        fisheye rays at or beyond 90 degrees have no pinhole point and are invalid."""
        rays, valid = self.unproject(xy_d)
        valid = valid & (rays[:, 2] > 1e-9)
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = rays[:, :2] / rays[:, 2:3]
        xy[~valid] = np.nan
        return xy, valid

    def _radial_and_slope(self, r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The radial factor R(r^2) and its derivative dR/d(r^2)."""
        d = self.D
        num = 1.0 + r2 * (d[0] + r2 * (d[1] + r2 * d[4]))
        num_slope = d[0] + r2 * (2 * d[1] + r2 * 3 * d[4])
        if self.model != "rational_polynomial":
            return num, num_slope
        den = 1.0 + r2 * (d[5] + r2 * (d[6] + r2 * d[7]))
        den_slope = d[5] + r2 * (2 * d[6] + r2 * 3 * d[7])
        return num / den, (num_slope * den - num * den_slope) / (den * den)

    def _undistort_newton(self, xy_d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Newton's method with the model's analytic Jacobian, iterating only on the points not
        yet converged (a camera's worth of pixels converges in a few steps; points past the fold
        never do and are dropped once they leave the monotonic radius)."""
        xy = xy_d.copy()
        _k1, _k2, p1, p2 = self.D[:4]
        fold = self._fold_radius()
        active = np.arange(len(xy))
        for _ in range(NEWTON_ITERATIONS):
            if not len(active):
                break
            x, y = xy[active, 0], xy[active, 1]
            r2 = x * x + y * y
            radial, slope = self._radial_and_slope(r2)
            fx = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x) - xy_d[active, 0]
            fy = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y - xy_d[active, 1]
            a = radial + 2 * x * x * slope + 2 * p1 * y + 6 * p2 * x          # d x_d / d x
            b = 2 * x * y * slope + 2 * p1 * x + 2 * p2 * y                   # d x_d / d y (= d y_d / d x)
            d = radial + 2 * y * y * slope + 6 * p1 * y + 2 * p2 * x          # d y_d / d y
            det = a * d - b * b
            with np.errstate(divide="ignore", invalid="ignore"):
                sx, sy = (d * fx - b * fy) / det, (a * fy - b * fx) / det
            bad = ~(np.isfinite(sx) & np.isfinite(sy))
            sx[bad], sy[bad] = 0.0, 0.0
            # A damped step keeps a point that starts beyond the fold from jumping far away.
            scale = np.minimum(1.0, 0.5 / np.maximum(np.hypot(sx, sy), 1e-300))
            xy[active, 0] = x - sx * scale
            xy[active, 1] = y - sy * scale
            # Done: converged, or past the fold (the Jacobian no longer positive: no inverse there).
            done = (np.hypot(fx, fy) < CONVERGED_RESIDUAL * 1e-2) | (r2 > 4 * fold * fold) | bad | (det <= 0)
            active = active[~done]
        residual = np.linalg.norm(self.distort(xy) - xy_d, axis=1)
        valid = (residual < CONVERGED_RESIDUAL) & (np.hypot(xy[:, 0], xy[:, 1]) <= fold)
        return xy, valid

    def _unproject_fisheye(self, xy_d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta_d = np.hypot(xy_d[:, 0], xy_d[:, 1])
        theta = theta_d.copy()
        k1, k2, k3, k4 = self.D
        for _ in range(NEWTON_ITERATIONS):
            t2 = theta * theta
            f = self.theta_d(theta) - theta_d
            if np.abs(f).max(initial=0.0) < CONVERGED_RESIDUAL * 1e-2:
                break
            df = 1.0 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
            with np.errstate(divide="ignore", invalid="ignore"):
                step = np.where(np.abs(df) > 1e-12, f / df, 0.0)
            theta = theta - np.clip(step, -0.5, 0.5)
        residual = np.abs(self.theta_d(theta) - theta_d)
        limit = min(math.radians(self.fov_deg) / 2.0, self._fold_radius())
        valid = (residual < CONVERGED_RESIDUAL) & (theta >= 0) & (theta <= limit)
        with np.errstate(divide="ignore", invalid="ignore"):
            unit = np.where(theta_d[:, None] > 1e-12, xy_d / np.maximum(theta_d, 1e-300)[:, None], 0.0)
        sin_t = np.sin(theta)
        rays = np.stack([unit[:, 0] * sin_t, unit[:, 1] * sin_t, np.cos(theta)], 1)
        return rays, valid

    def _fold_radius(self) -> float:
        """Radius (normalised r for the pinhole models, theta in radians for the fisheye) up to
        which the radial mapping increases; beyond it the model folds back. Found by scanning
        its derivative (cached: Lens is frozen)."""
        cached = self.__dict__.get("_fold")
        if cached is not None:
            return cached
        if self.is_fisheye:
            r = np.linspace(0.0, math.pi, 20001)
            mapped = self.theta_d(r)
        else:
            r = np.linspace(0.0, 20.0, 200001)        # 20 = a ray 87 degrees off axis
            mapped = r * self._radial(r * r)
        rising = np.diff(mapped) > 0
        if self.model == "rational_polynomial":
            rising &= np.isfinite(mapped[1:]) & np.isfinite(mapped[:-1])
        fold = float(r[-1]) if rising.all() else float(r[int(np.argmin(rising))])
        object.__setattr__(self, "_fold", fold)
        return fold


# ---------------------------------------------------------------------------------------------
# Pixel maps
# ---------------------------------------------------------------------------------------------

def pixel_grid(width: int, height: int) -> np.ndarray:
    """(H*W, 2) pixel centres (u, v), row-major."""
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    return np.stack([u.ravel(), v.ravel()], 1)


def pixels_to_normalised(pixels: np.ndarray, K: np.ndarray) -> np.ndarray:
    K = np.asarray(K, np.float64)
    return np.stack([(pixels[:, 0] - K[0, 2]) / K[0, 0], (pixels[:, 1] - K[1, 2]) / K[1, 1]], 1)


def normalised_to_pixels(xy: np.ndarray, K: np.ndarray) -> np.ndarray:
    K = np.asarray(K, np.float64)
    return np.stack([xy[:, 0] * K[0, 0] + K[0, 2], xy[:, 1] * K[1, 1] + K[1, 2]], 1)


def rectify_map(K_src: np.ndarray, lens: Lens, K_dst: np.ndarray, dst_size: tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps (map_x, map_y, float32 (H, W)) that draw the pinhole view ``K_dst`` of
    ``dst_size`` (width, height) from an image of the distorted camera (K_src, lens). Pixels
    with no valid source are -1 (outside every image: remap leaves its border value)."""
    w, h = dst_size
    xy = pixels_to_normalised(pixel_grid(w, h), K_dst)
    rays = np.concatenate([xy, np.ones((len(xy), 1))], 1)
    xy_d, valid = lens.project_rays(rays)
    src = normalised_to_pixels(xy_d, K_src)
    src[~valid] = -1.0e4
    return src[:, 0].reshape(h, w).astype(np.float32), src[:, 1].reshape(h, w).astype(np.float32)


def distorted_rays(K: np.ndarray, lens: Lens, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's unit ray of the distorted camera (K, lens) of ``size``: ((H, W, 3), valid (H, W))."""
    w, h = size
    rays, valid = lens.unproject(pixels_to_normalised(pixel_grid(w, h), K))
    return rays.reshape(h, w, 3), valid.reshape(h, w)


def inscribed_pinhole(K_src: np.ndarray, lens: Lens, size: tuple[int, int], max_fov_deg: float = 120.0) -> np.ndarray:
    """The pinhole K of the same image size whose every pixel sees inside the distorted image
    (K_src, lens, size): the largest centred view with the source's fx/fy ratio (like
    cv2.getOptimalNewCameraMatrix with alpha=0). Its field of view is capped at ``max_fov_deg``
    per axis (a fisheye rectified whole would stretch its rim without bound)."""
    w, h = size
    K_src = np.asarray(K_src, np.float64)
    # The source image's border, undistorted: the rectified view must stay inside it. Sampled
    # densely along each side, half a pixel inside the outer pixel centres.
    n = 4 * max(w, h)
    us, vs = np.linspace(0, w - 1, n), np.linspace(0, h - 1, n)
    sides = {"left": np.stack([np.zeros(n), vs], 1), "right": np.stack([np.full(n, w - 1.0), vs], 1),
             "top": np.stack([us, np.zeros(n)], 1), "bottom": np.stack([us, np.full(n, h - 1.0)], 1)}
    limit = math.tan(math.radians(max_fov_deg) / 2.0)
    bound = {}
    for name, pix in sides.items():
        xy, valid = lens.undistort(pixels_to_normalised(pix, K_src))
        # Border pixels with no pinhole ray (a fisheye rim beyond 90 degrees) lie beyond any cap.
        coord = xy[:, 0] if name in ("left", "right") else xy[:, 1]
        coord = np.where(valid, coord, -np.inf if name in ("left", "top") else np.inf)
        bound[name] = float(np.max(coord)) if name in ("left", "top") else float(np.min(coord))
    x0, x1 = max(bound["left"], -limit), min(bound["right"], limit)
    y0, y1 = max(bound["top"], -limit), min(bound["bottom"], limit)
    if not (x1 > x0 and y1 > y0):
        raise InputError(f"the {lens.model} lens D = {list(lens.D)} leaves no rectifiable view",
                         "check the coefficients and the camera matrix")
    ratio = K_src[0, 0] / K_src[1, 1]
    # fx = s * ratio, fy = s; the view's x span (w - 1) / fx must fit in x1 - x0, likewise y.
    s = max((w - 1) / (ratio * (x1 - x0)), (h - 1) / (y1 - y0))
    fx, fy = s * ratio, s
    cx = (w - 1) / 2.0 - fx * (x0 + x1) / 2.0
    cy = (h - 1) / 2.0 - fy * (y0 + y1) / 2.0
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def covering_pinhole(K: np.ndarray, lens: Lens, size: tuple[int, int], max_scale: float = 2.0,
                     rays: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """The pinhole view (K_render, (width, height)) that a distorted camera (K, lens, size) is
    warped from: the same focal lengths (the centre keeps its resolution), an image grown to hold
    the rays of every valid distorted pixel plus a 2-pixel margin for the bilinear taps. Where
    that would be more than ``max_scale`` times the camera's side, the focal lengths shrink instead
    (strong barrel distortion: the rim was sampled coarsely by the lens anyway). ``rays``: the
    camera's distorted_rays, where already made."""
    w, h = size
    K = np.asarray(K, np.float64)
    if rays is None:
        rays = distorted_rays(K, lens, size)
    ray, valid = rays[0].reshape(-1, 3), rays[1].reshape(-1)
    valid = valid & (ray[:, 2] > 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = ray[:, :2] / ray[:, 2:3]
    if not valid.any():
        raise InputError(f"the {lens.model} lens D = {list(lens.D)} images no ray", "check the coefficients")
    xy = xy[valid]
    lo, hi = xy.min(0), xy.max(0)
    fx, fy = K[0, 0], K[1, 1]
    margin = 2.0
    need_w = (hi[0] - lo[0]) * fx + 2 * margin + 1
    need_h = (hi[1] - lo[1]) * fy + 2 * margin + 1
    shrink = min(1.0, max_scale * w / need_w, max_scale * h / need_h)
    fx, fy = fx * shrink, fy * shrink
    width = int(math.ceil((hi[0] - lo[0]) * fx + 2 * margin + 1))
    height = int(math.ceil((hi[1] - lo[1]) * fy + 2 * margin + 1))
    # The render's pixel grid on the camera's own near the centre (principal points a whole
    # number of pixels apart): there the lens barely moves pixels, and the warp then copies render
    # pixels instead of blending neighbours (measured at 640x360 with a barrel dash-camera lens: 32.0 -> 34.6 dB against the pinhole view; bicubic colour sampling in lens_warp.py then gives 35.6).
    cx = K[0, 2] + math.ceil(margin - lo[0] * fx - K[0, 2]) if shrink == 1.0 else margin - lo[0] * fx
    cy = K[1, 2] + math.ceil(margin - lo[1] * fy - K[1, 2]) if shrink == 1.0 else margin - lo[1] * fy
    width, height = width + 1, height + 1
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]), (width, height)
