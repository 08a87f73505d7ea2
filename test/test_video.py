"""Video / image I/O: round trips, true timestamps, frame ranges, clear errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inspatio_ros.errors import InputError
from inspatio_ros.video import read_image, read_video, write_png, write_video


def _frames(n: int, h: int = 64, w: int = 96) -> list[np.ndarray]:
    """Smooth, distinct frames (a gradient that shifts per frame) that H.264 encodes well."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        r = (xx * 2 + i * 10) % 256
        g = (yy * 3) % 256
        b = np.full_like(xx, 40 + 30 * i)
        out.append(np.stack([r, g, b], -1).astype(np.uint8))
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def test_round_trip_frames_and_timestamps(tmp_path):
    frames = _frames(6)
    path = write_video(tmp_path / "v.mp4", iter(frames), fps=10.0)
    got, times = read_video(path)
    assert len(got) == 6
    assert got[0].shape == (64, 96, 3) and got[0].dtype == np.uint8
    for a, b in zip(frames, got):
        assert _psnr(a, b) > 35
    np.testing.assert_allclose(times, np.arange(6) / 10.0, atol=1e-6)
    # No temporary file is left beside the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


def test_ntsc_rate_timestamps(tmp_path):
    write_video(tmp_path / "v.mp4", _frames(4), fps=30000 / 1001)
    _, times = read_video(tmp_path / "v.mp4")
    np.testing.assert_allclose(times, np.arange(4) * 1001 / 30000, atol=1e-6)


def test_frame_range_and_stride(tmp_path):
    frames = _frames(7)
    write_video(tmp_path / "v.mp4", frames, fps=5.0)
    got, times = read_video(tmp_path / "v.mp4", start=1, end=6, stride=2)
    np.testing.assert_allclose(times, [0.2, 0.6, 1.0], atol=1e-6)
    assert _psnr(got[1], frames[3]) > 35
    with pytest.raises(InputError, match="none in"):
        read_video(tmp_path / "v.mp4", start=50)
    with pytest.raises(InputError):
        read_video(tmp_path / "v.mp4", stride=0)


def test_odd_size_is_an_error_unless_padded(tmp_path):
    odd = [np.zeros((33, 47, 3), np.uint8)] * 2
    with pytest.raises(InputError, match="odd"):
        write_video(tmp_path / "odd.mp4", odd, fps=10)
    assert not (tmp_path / "odd.mp4").exists()
    assert not list(tmp_path.iterdir())  # nothing half-written
    write_video(tmp_path / "pad.mp4", odd, fps=10, pad_odd=True)
    got, _ = read_video(tmp_path / "pad.mp4")
    assert got[0].shape == (34, 48, 3)


def test_write_errors(tmp_path):
    with pytest.raises(InputError, match="no frames"):
        write_video(tmp_path / "e.mp4", [], fps=10)
    with pytest.raises(InputError, match="uint8"):
        write_video(tmp_path / "e.mp4", [np.zeros((8, 8, 3), np.float32)], fps=10)
    with pytest.raises(InputError, match="one size"):
        write_video(tmp_path / "e.mp4", [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)], fps=10)
    with pytest.raises(InputError, match="frame rate"):
        write_video(tmp_path / "e.mp4", _frames(1), fps=0)
    assert not list(tmp_path.iterdir())


def test_read_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 10)
    with pytest.raises(InputError, match="junk.mp4"):
        read_video(junk)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError):
        read_video(empty)
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(InputError, match="bad.png"):
        read_image(tmp_path / "bad.png")


def test_png_round_trip_and_grayscale(tmp_path):
    rgb = _frames(1)[0]
    write_png(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)

    gray = (np.arange(64 * 96) % 256).reshape(64, 96).astype(np.uint8)
    write_png(tmp_path / "g.png", gray)
    got = read_image(tmp_path / "g.png")
    assert got.shape == (64, 96, 3)
    for c in range(3):
        np.testing.assert_array_equal(got[:, :, c], gray)

    g16 = (np.arange(16 * 16).reshape(16, 16) * 256).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    got16 = read_image(tmp_path / "g16.png")
    assert got16.shape == (16, 16, 3)
    np.testing.assert_array_equal(got16[:, :, 0], (g16 >> 8).astype(np.uint8))

    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgb)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_write_png_rejects_bad_arrays(tmp_path):
    with pytest.raises(InputError):
        write_png(tmp_path / "x.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InputError):
        write_png(tmp_path / "x.png", np.zeros((4, 4, 4), np.uint8))
    assert not list(tmp_path.iterdir())


def test_time_window_stride_and_downscale(tmp_path):
    from inspatio_ros.video import video_size

    frames = _frames(10)
    write_video(tmp_path / "v.mp4", frames, fps=10.0)
    idx: list[int] = []
    got, times = read_video(tmp_path / "v.mp4", start_s=0.25, end_s=0.75, stride=2, max_size=48, indices=idx)
    assert idx == [3, 5, 7]
    np.testing.assert_allclose(times, [0.3, 0.5, 0.7], atol=1e-6)
    assert got[0].shape == (32, 48, 3)
    small = np.asarray(Image.fromarray(frames[5]).resize((48, 32), Image.Resampling.BOX))
    assert _psnr(got[1], small) > 30
    assert video_size(tmp_path / "v.mp4") == (96, 64)


def test_variable_frame_rate_keeps_true_timestamps(tmp_path):
    """Frames at irregular times (a phone's VFR video): the decoder reports each frame's own time,
    and a time window selects by those times, not by frame count / nominal rate."""
    import av
    from fractions import Fraction

    when = [0.0, 0.05, 0.30, 0.32, 0.90, 1.00]
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for t, frame in zip(when, _frames(len(when))):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = int(round(t * 1000))
            vf.time_base = Fraction(1, 1000)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    _, times = read_video(path)
    np.testing.assert_allclose(times - times[0], when, atol=2e-3)
    _, window = read_video(path, start_s=0.25, end_s=0.95)
    np.testing.assert_allclose(window - times[0], [0.30, 0.32, 0.90], atol=2e-3)
