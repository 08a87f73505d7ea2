"""Build inputs: a video file, an image folder, or a dataset folder, plus optional depth maps.

A *dataset folder* is laid out like ``inspatio-ros synth`` output or ``shared/data/kitti06``:
frames in ``frames/``, ``image_0/``, ``images/``, ``rgb/`` or ``image/`` (else ``video.mp4``),
``camera_info.yaml``, a pose file (``poses_kitti.txt``, ``poses_gt.txt``, ``poses_tum.txt`` or
``poses.txt``), ``times.txt`` and ``depth/``. Anything given on the command line wins.

Depth maps: ``.npy`` float metres, or 16-bit ``.png`` millimetres. 0 and NaN mean unknown;
+inf means "infinitely far" (sky): the build places such pixels on a far background shell.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..camera import Intrinsics
from ..errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
FRAME_DIRS = ("frames", "image_0", "images", "rgb", "image", "image_2")
POSE_FILES = ("poses_kitti.txt", "poses_gt.txt", "poses_tum.txt", "poses.txt", "trajectory.txt")


@dataclass
class FrameSet:
    """Frames of one input, loaded lazily: ``load(i)`` returns RGB uint8 (H,W,3)."""

    source: Path
    names: list[str]
    times: np.ndarray | None
    load: Callable[[int], np.ndarray]
    camera_info: Path | None = None
    poses: Path | None = None
    depth_dir: Path | None = None
    notes: list[str] = field(default_factory=list)
    # Geometry an input carries in memory (a bag), used when no file gives it.
    intrinsics: Intrinsics | None = None
    pose_array: np.ndarray | None = None           # (N,4,4) OpenCV camera-to-world
    pose_source: str | None = None
    depth_load: Callable[[int], np.ndarray] | None = None   # frame index -> metres (H,W), NaN unknown
    index: np.ndarray | None = None        # each frame's number in the whole input
    all_names: list[str] | None = None     # names of every frame of the input (None: a decoded video)
    native_size: tuple[int, int] | None = None   # (width, height) before --max-size
    windowed: bool = False
    # Frames in the whole input before --start/--end/--stride (None: unknown, a video decoded only
    # up to --end). The build checks the pose count against it and records it for eval.
    total_frames: int | None = None
    # Where the decoded frames live when ``load`` reads them from a disk-backed store (a video's):
    # the streaming tests count the frames it holds in memory.
    frame_store: object | None = None
    lens: object | None = None             # lens.Lens of a bag's camera_info with a distortion (build undistorts)

    def __post_init__(self):
        if self.index is None:
            self.index = np.arange(len(self.names), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.names)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _check_window(start, end, stride, max_size) -> None:
    if stride < 1:
        raise InputError(f"--stride {stride} is not valid", "give a stride of 1 or more")
    for name, value in (("--start", start), ("--end", end)):
        if value is not None and not (np.isfinite(value) and value >= 0):
            raise InputError(f"{name} {value} is not valid", "give seconds since the first frame, >= 0")
    if start is not None and end is not None and end < start:
        raise InputError(f"--end {end} is before --start {start}", "give an end time after the start time")
    if max_size is not None and max_size < 16:
        raise InputError(f"--max-size {max_size} is too small", "give the longer image side in pixels, 16 or more")


def _video_input(source: Path, video: Path, start, end, stride, max_size) -> FrameSet:
    """Frames of a video decoded once, in one sequential pass, already windowed, strided and
    downscaled, into a disk-backed store (spill.ArrayStore): memory holds a few recent frames,
    not the video (a 10-minute 640x360 video at 10 frames/s is 4.1 GB of RGB)."""
    from ..video import iter_video, video_size
    from .spill import ArrayStore

    indices: list[int] = []
    times: list[float] = []
    stats: dict = {}
    store: ArrayStore | None = None
    for index, t, frame in iter_video(video, stride=stride, start_s=start, end_s=end, max_size=max_size,
                                      stats=stats):
        if store is None:
            store = ArrayStore(frame.shape, np.uint8)
        elif frame.shape != store.shape:
            raise InputError(f"frame {index} of video {video} is {frame.shape[1]}x{frame.shape[0]}, the first "
                             f"is {store.shape[1]}x{store.shape[0]}", "re-encode the video at one frame size")
        store.put(len(indices), frame)
        indices.append(index)
        times.append(t)
    fs = FrameSet(source, [f"{i:06d}" for i in indices], np.asarray(times, dtype=np.float64), store.get)
    fs.index = np.asarray(indices, dtype=np.int64)
    fs.native_size = video_size(video)
    fs.total_frames = stats["frames"] if stats["complete"] else None
    fs.windowed = True
    fs.frame_store = store
    return fs


def _window(fs: FrameSet, start, end, stride, max_size) -> FrameSet:
    """The frames of ``fs`` in the time window, every ``stride``-th, downscaled to ``max_size``."""
    from ..video import fit_image

    n = len(fs)
    if fs.native_size is None:
        h, w = fs.load(0).shape[:2]
        fs.native_size = (w, h)
    times = fs.times
    if times is None:
        times = np.arange(n, dtype=np.float64) / 10.0
        if start is not None or end is not None:
            fs.notes.append("no timestamps: the --start/--end window assumes 10 frames/s")
    since = times - times[0]
    inside = np.ones(n, bool)
    if start is not None:
        inside &= since >= start - 1e-9
    if end is not None:
        inside &= since <= end + 1e-9
    keep = np.nonzero(inside)[0][::stride]
    if len(keep) == n and (max_size is None or max(fs.native_size) <= max_size):
        return fs
    src_load, src_depth = fs.load, fs.depth_load
    sub = FrameSet(fs.source, [fs.names[k] for k in keep], None if fs.times is None else fs.times[keep],
                   lambda i: fit_image(src_load(int(keep[i])), max_size), fs.camera_info, fs.poses, fs.depth_dir,
                   fs.notes, fs.intrinsics, None if fs.pose_array is None else fs.pose_array[keep], fs.pose_source,
                   None if src_depth is None else (lambda i: src_depth(int(keep[i]))))
    sub.index = fs.index[keep]
    sub.all_names = fs.all_names
    sub.native_size = fs.native_size
    sub.total_frames = fs.total_frames
    sub.windowed = True
    sub.lens = fs.lens
    return sub


def open_input(path: str | Path, bag_topics=None, *, start: float | None = None, end: float | None = None,
               stride: int = 1, max_size: int | None = None) -> FrameSet:
    """Open INPUT (video, image folder, dataset folder or rosbag2 bag) without decoding every frame
    yet. ``bag_topics``: a bag.BagTopics naming the topics to read (default: chosen by type).
    ``start``/``end``: seconds since the first frame; ``stride``: every S-th frame of that window;
    ``max_size``: frames downscaled so that their longer side is at most that many pixels (depth
    maps and intrinsics follow in the build). ``FrameSet.index`` keeps each kept frame's number in
    the whole input (pose files, depth maps and evaluation refer to frames by it)."""
    from ..video import read_image

    _check_window(start, end, stride, max_size)
    path = Path(path)
    if not path.exists():
        raise InputError(f"input {path} does not exist",
                         "give a video file, an image folder, a dataset folder or a rosbag2 bag")
    from .bag import is_bag, open_bag

    if is_bag(path):
        fs = open_bag(path, bag_topics)
        fs.total_frames = len(fs)
        return _cached(_window(fs, start, end, stride, max_size))
    if path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise InputError(f"input {path} is not a video ({path.suffix})",
                             f"give one of {', '.join(sorted(VIDEO_SUFFIXES))}, or a folder of images")
        return _video_input(path, path, start, end, stride, max_size)

    folder = path
    images = _image_files(folder)
    frame_dir = next((folder / d for d in FRAME_DIRS if (folder / d).is_dir() and _image_files(folder / d)), None)
    if frame_dir is not None:
        images = _image_files(frame_dir)
    fs: FrameSet
    if images:
        fs = FrameSet(folder, [p.stem for p in images], None, lambda i: read_image(images[i]))
        fs.all_names = list(fs.names)
        fs.total_frames = len(images)
    else:
        videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if not videos:
            raise InputError(f"input folder {folder} holds no images and no video",
                             f"put frames in one of {', '.join(FRAME_DIRS)}/ or a video.mp4 in it")
        video = folder / "video.mp4" if (folder / "video.mp4").exists() else videos[0]
        fs = _video_input(folder, video, start, end, stride, max_size)
        fs.notes.append(f"frames decoded from {video.name}")

    if (folder / "camera_info.yaml").exists():
        fs.camera_info = folder / "camera_info.yaml"
    fs.poses = next((folder / p for p in POSE_FILES if (folder / p).exists()), None)
    if (folder / "times.txt").exists():
        times = read_times(folder / "times.txt")
        total = len(fs.all_names) if fs.all_names is not None else None
        if total is not None and len(times) == total:
            fs.times = times
        elif total is None and len(times) > int(fs.index.max()):
            fs.times = times[fs.index]      # a windowed video: times.txt lists every frame of it
        else:
            fs.notes.append(f"{folder / 'times.txt'} has {len(times)} lines for {total or len(fs)} frames; ignored "
                            "(times from the poses or 10 frames/s instead): give one time per frame")
    if (folder / "depth").is_dir():
        fs.depth_dir = folder / "depth"
    return _cached(fs if fs.windowed else _window(fs, start, end, stride, max_size))


def _cached(fs: FrameSet) -> FrameSet:
    """``fs`` whose ``load`` keeps its last frames (spill.CachedLoader): the build's stages read
    each frame many times (MVS for every reference frame within reach, the view check, fusion), an
    image folder's or bag's frame would be decoded (and downscaled) again each time. A video's
    frames are already decoded, into a store that caches its own."""
    from .spill import CachedLoader

    if fs.frame_store is None and not isinstance(fs.load, CachedLoader):
        fs.load = CachedLoader(fs.load)
    return fs


def read_times(path: Path) -> np.ndarray:
    try:
        values = [float(line.split()[0]) for line in Path(path).read_text().splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
    except (ValueError, OSError) as exc:
        raise InputError(f"timestamp file {path} is not one number per line ({exc})",
                         "write one time in seconds per line") from None
    times = np.asarray(values, dtype=np.float64)
    if len(times) and (not np.isfinite(times).all() or (np.diff(times) <= 0).any()):
        raise InputError(f"timestamp file {path} is not strictly increasing and finite",
                         "fix the timestamps so that each frame's time is later than the last")
    return times


class DepthMaps:
    """Depth maps of a folder matched to frames by file stem (or by order when stems differ)."""

    def __init__(self, folder: str | Path, frame_names: list[str]):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"depth folder {self.folder} does not exist", "give a folder of .npy or 16-bit .png maps")
        files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in (".npy", ".png"))
        if not files:
            raise InputError(f"depth folder {self.folder} holds no .npy or .png depth maps",
                             "give .npy (metres) or 16-bit .png (millimetres) files named like the frames")
        by_stem = {p.stem: p for p in files}
        if all(name in by_stem for name in frame_names):
            self.files = [by_stem[name] for name in frame_names]
        elif len(files) == len(frame_names):
            self.files = files
        else:
            raise InputError(f"depth folder {self.folder} has {len(files)} maps for {len(frame_names)} frames "
                             "and their names do not match the frames'",
                             "name each depth map like its frame (000123.npy for 000123.png)")

    def load(self, i: int, shape: tuple[int, int]) -> np.ndarray:
        """Depth in metres, float32 (H,W): NaN unknown, +inf far background."""
        path = self.files[i]
        try:
            if path.suffix.lower() == ".npy":
                depth = np.load(path).astype(np.float32)
            else:
                from PIL import Image

                with Image.open(path) as im:
                    raw = np.asarray(im)
                if raw.dtype != np.uint16 and raw.dtype != np.int32:
                    raise ValueError(f"PNG depth must be 16-bit millimetres, got {raw.dtype}")
                depth = raw.astype(np.float32) / 1000.0
        except (OSError, ValueError) as exc:
            raise InputError(f"depth map {path} cannot be read ({exc})",
                             "give .npy float metres or 16-bit .png millimetres") from None
        if depth.ndim == 3 and depth.shape[-1] == 1:
            depth = depth[..., 0]
        if depth.shape != tuple(shape):
            raise InputError(f"depth map {path} is {depth.shape[1]}x{depth.shape[0]}, its frame is "
                             f"{shape[1]}x{shape[0]}", "give depth maps at the frames' resolution")
        depth = np.where(depth <= 0, np.nan, depth)
        return depth
