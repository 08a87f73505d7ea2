"""Video and image file I/O: H.264 mp4 through PyAV, PNG through Pillow.

Frames are always ``(H, W, 3)`` uint8 RGB numpy arrays. Writes are atomic (temporary file beside
the target, then rename), so a crash never leaves a half-written video or image behind.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .errors import InputError
from .fileio import atomic_path

# x264 constant-rate factor: 17 is visually lossless for our synthetic scenes (PSNR vs the PNGs
# ~45 dB), so the video adds no noticeable error on top of the renderer's.
DEFAULT_CRF = 17


def _check_frame(frame: np.ndarray, index: int, size: tuple[int, int] | None) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InputError(f"video frame {index} has shape {frame.shape} and dtype {frame.dtype}",
                         "give (H, W, 3) uint8 RGB frames")
    if size is not None and frame.shape[:2] != size:
        raise InputError(f"video frame {index} is {frame.shape[1]}x{frame.shape[0]}, "
                         f"frame 0 was {size[1]}x{size[0]}", "give frames of one size")
    return np.ascontiguousarray(frame)


def _pad_even(frame: np.ndarray) -> np.ndarray:
    """Replicate the last row/column so both sides are even (yuv420p halves the chroma planes)."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float, *,
                crf: int = DEFAULT_CRF, pad_odd: bool = False) -> Path:
    """Encode RGB frames to an H.264 (yuv420p) mp4 at ``fps``; frame i gets PTS ``i / fps``.

    ``frames`` may be a generator: frames are encoded as they arrive, so memory stays flat.
    yuv420p needs even sizes: an odd width/height is an error unless ``pad_odd`` is set, which
    replicates the last row/column (the decoded video is then one pixel larger).
    """
    import av

    path = Path(path)
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(f"video frame rate {fps} is not valid", "give a positive frames-per-second value")
    rate = Fraction(fps).limit_denominator(1001)
    n = 0
    with atomic_path(path) as tmp:
        container = av.open(str(tmp), mode="w", format="mp4")
        try:
            stream = None
            size = None
            for frame in frames:
                frame = _check_frame(frame, n, size)
                if size is None:
                    size = frame.shape[:2]
                    h, w = size
                    if (h % 2 or w % 2) and not pad_odd:
                        raise InputError(f"video size {w}x{h} is odd, which H.264 yuv420p cannot hold",
                                         "use an even width and height (or pass pad_odd=True)")
                    stream = container.add_stream("libx264", rate=rate)
                    stream.width, stream.height = w + w % 2, h + h % 2
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": str(int(crf)), "preset": "medium"}
                    stream.codec_context.time_base = 1 / rate
                if pad_odd:
                    frame = _pad_even(frame)
                vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                vf.pts = n
                vf.time_base = 1 / rate
                for packet in stream.encode(vf):
                    container.mux(packet)
                n += 1
            if stream is None:
                raise InputError(f"no frames were given for video {path}", "give at least one frame")
            for packet in stream.encode():  # flush the encoder's delayed frames
                container.mux(packet)
        finally:
            container.close()
    return path


def _open_video(path: Path):
    import av

    if not path.exists():
        raise InputError(f"video file {path} does not exist", "check the path")
    if not path.is_file():
        raise InputError(f"video path {path} is not a file", "give a video file such as video.mp4")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"video file {path} cannot be read ({exc})",
                         "give a video FFmpeg can decode (mp4/mkv/avi with H.264, H.265, VP9 ...)") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"file {path} holds no video stream", "give a file with a video track")
    return container


def video_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of a video's first stream, from its header."""
    container = _open_video(Path(path))
    try:
        ctx = container.streams.video[0].codec_context
        return int(ctx.width), int(ctx.height)
    finally:
        container.close()


def read_video(path: str | os.PathLike, start: int = 0, end: int | None = None,
               stride: int = 1, *, start_s: float | None = None, end_s: float | None = None,
               max_size: int | None = None, indices: list[int] | None = None,
               stats: dict | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Decode frames ``start, start+stride, ... < end`` (frame indices in display order) into a list.

    ``start_s`` / ``end_s``: only frames whose time since the first frame lies in [start_s, end_s]
    (the stride then counts within that window). ``max_size``: frames larger than that on their
    longer side are downscaled as they are decoded (memory stays proportional to what is kept).
    ``indices``: if a list, the decoded frames' indices in the whole video are appended to it.
    ``stats``: if a dict, it gets ``frames`` (frames gone through) and ``complete`` (True when
    decoding reached the end of the stream, so ``frames`` is the whole video's frame count).
    Returns the RGB frames and their presentation timestamps in seconds (the stream's true PTS,
    not ``i / fps``, so variable-frame-rate video keeps its timing). A long video is better read
    with :func:`iter_video`, which holds one frame at a time.
    """
    frames: list[np.ndarray] = []
    times: list[float] = []
    for index, t, frame in iter_video(path, start, end, stride, start_s=start_s, end_s=end_s, max_size=max_size,
                                      stats=stats):
        frames.append(frame)
        times.append(t)
        if indices is not None:
            indices.append(index)
    return frames, np.asarray(times, dtype=np.float64)


def iter_video(path: str | os.PathLike, start: int = 0, end: int | None = None,
               stride: int = 1, *, start_s: float | None = None, end_s: float | None = None,
               max_size: int | None = None, stats: dict | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index in the whole video, presentation time in seconds, RGB frame) of the frames
    read_video selects (same arguments), one at a time in one sequential decoding pass. ``stats``
    is filled when the iteration ends; an InputError when no frame was selected."""
    import av

    path = Path(path)
    if start < 0 or stride < 1 or (end is not None and end < start):
        raise InputError(f"frame range start={start} end={end} stride={stride} is not valid",
                         "give 0 <= start <= end and stride >= 1")
    container = _open_video(path)
    selected = 0
    index = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        first_time = None
        in_window = 0
        complete = False
        for frame in container.decode(stream):
            if end is not None and index >= end:
                break
            if frame.pts is not None:
                t = float(frame.pts * frame.time_base)
            else:  # no PTS (rare raw streams): fall back to the nominal rate
                t = index / float(stream.average_rate or stream.guessed_rate or 30)
            first_time = t if first_time is None else first_time
            since = t - first_time
            if end_s is not None and since > end_s + 1e-9:
                break
            if index >= start and (start_s is None or since >= start_s - 1e-9):
                if in_window % stride == 0:
                    selected += 1
                    yield index, t, fit_image(frame.to_ndarray(format="rgb24"), max_size)
                in_window += 1
            index += 1
        else:
            complete = True
    except av.error.FFmpegError as exc:
        raise InputError(f"video file {path} is damaged ({exc})", "re-encode or re-download it") from None
    finally:
        container.close()
    if stats is not None:
        stats.update(frames=index, complete=complete)
    if not selected:
        what = "holds no decodable frames" if index == 0 else f"has {index} frames, none in [{start}, {end})"
        raise InputError(f"video file {path} {what}", "check the file and the frame range")


def fitted_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    """(width, height) scaled down, aspect kept (rounded), so that the longer side is at most
    ``max_size``; unchanged when it already fits or no size is given."""
    if not max_size or max(width, height) <= max_size:
        return width, height
    scale = max_size / max(width, height)
    return max(2, int(round(width * scale))), max(2, int(round(height * scale)))


def fit_image(image: np.ndarray, max_size: int | None) -> np.ndarray:
    """An RGB image downscaled (area average) to fitted_size, or the image itself."""
    h, w = image.shape[:2]
    size = fitted_size(w, h, max_size)
    if size == (w, h):
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX), dtype=np.uint8)


def resize_depth(depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Depth map at another size by nearest sampling (averaging across an edge would invent
    surfaces between foreground and background)."""
    h, w = depth.shape
    if (w, h) == (width, height):
        return depth
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return depth[rows[:, None], cols[None, :]]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; grayscale is expanded, alpha dropped, 16-bit scaled."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise InputError(f"image file {path} does not exist", "check the path")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit grayscale: keep the top 8 bits (Pillow's convert would clip at 255).
                arr = np.asarray(img, dtype=np.uint32)
                gray = np.clip(arr >> 8 if arr.max() > 255 else arr, 0, 255).astype(np.uint8)
                return np.repeat(gray[:, :, None], 3, axis=2)
            if img.mode == "F":
                gray = np.clip(np.asarray(img), 0, 255).astype(np.uint8)
                return np.repeat(gray[:, :, None], 3, axis=2)
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"image file {path} cannot be read ({exc})", "give a PNG or JPEG image") from None


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an (H, W, 3) RGB or (H, W) grayscale uint8 image as PNG, atomically."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise InputError(f"image for {path} has shape {image.shape} and dtype {image.dtype}",
                         "give (H, W, 3) or (H, W) uint8")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    path = Path(path)
    with atomic_path(path) as tmp:
        # compress_level 1: frames are written every render; size matters less than speed.
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG", compress_level=1)
    return path
