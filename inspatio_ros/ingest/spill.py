"""Per-frame arrays a build writes once and reads back by frame, held on disk instead of in memory.

A build's per-frame data (decoded frames, dense depth maps, moving-object masks) grows with the
video's length: a 10-minute 640x360 video at 10 frames/s is 4.1 GB of RGB frames and 5.5 GB of
float32 depth. Kept in lists and dicts, it set the build's peak memory (8.9 GB for an 8.8 s
dashcam clip). An :class:`ArrayStore` writes each frame's array into one temporary file (records
of one shape and dtype, at a fixed offset per frame) and reads it back with ``os.pread``: page
cache, not the process's memory, holds the data, and a small cache in memory keeps the frames a
sliding window uses again and again. The file is unlinked as soon as it is created, so nothing is
left on disk when the build ends, however it ends.
"""
from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from typing import Callable, Iterator

import numpy as np

# Bytes of recently read records each store keeps in memory: a sliding window's frames
# (MVS reads each frame for every reference frame within reach, ~20 times).
DEFAULT_CACHE_BYTES = 96 * 1024 * 1024


class ArrayStore:
    """Arrays of one ``shape`` and ``dtype`` written by index (in any order, at most once each
    unless overwritten) and read back by index. ``len(store)``: the number of indices written.

    ``alive()`` counts the records held in memory (the cache), which stays bounded by
    ``cache_bytes`` however many are written: the streaming tests check exactly that."""

    def __init__(self, shape: tuple[int, ...], dtype, *, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 directory: str | None = None):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.record_bytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self._file = tempfile.TemporaryFile(prefix="inspatio-spill-", dir=directory)
        self._fd = self._file.fileno()
        self._written: set[int] = set()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_records = max(1, int(cache_bytes // max(self.record_bytes, 1)))
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._written)

    def __contains__(self, index: int) -> bool:
        return int(index) in self._written

    def indices(self) -> list[int]:
        return sorted(self._written)

    def alive(self) -> int:
        return len(self._cache)

    def put(self, index: int, array: np.ndarray) -> None:
        index = int(index)
        if index < 0:
            raise ValueError(f"ArrayStore index {index} is negative")
        array = np.ascontiguousarray(array, dtype=self.dtype)
        if array.shape != self.shape:
            raise ValueError(f"ArrayStore holds {self.shape} arrays, got {array.shape} for index {index}")
        data = memoryview(array).cast("B")
        offset = index * self.record_bytes
        written = 0
        while written < len(data):
            written += os.pwrite(self._fd, data[written:], offset + written)
        with self._lock:
            self._written.add(index)
            self._cache.pop(index, None)

    def get(self, index: int) -> np.ndarray:
        """The array written at ``index`` (a read-only view when cached: copy before changing it)."""
        with self._lock:            # the build reads frames from two threads (ahead.Ahead)
            return self._get(index)

    def _get(self, index: int) -> np.ndarray:
        index = int(index)
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        if index not in self._written:
            raise KeyError(f"no array was written at index {index}")
        raw = os.pread(self._fd, self.record_bytes, index * self.record_bytes)
        if len(raw) != self.record_bytes:
            raise OSError(f"spill file truncated at record {index} ({len(raw)} of {self.record_bytes} bytes)")
        array = np.frombuffer(raw, dtype=self.dtype).reshape(self.shape)     # read-only (bytes)
        self._cache[index] = array
        while len(self._cache) > self._cache_records:
            self._cache.popitem(last=False)
        return array

    def __getitem__(self, index: int) -> np.ndarray:
        return self.get(index)

    def close(self) -> None:
        self._cache.clear()
        self._file.close()

    def __del__(self):
        try:
            self._file.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: the file is unlinked anyway
            pass


class PackedMaskStore:
    """Boolean masks of one shape kept bit-packed (1/8 of a bool array) on disk, by index."""

    def __init__(self, shape: tuple[int, int], **kwargs):
        self.mask_shape = tuple(int(s) for s in shape)
        packed = (int(np.prod(self.mask_shape)) + 7) // 8
        self._store = ArrayStore((packed,), np.uint8, **kwargs)

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, index: int) -> bool:
        return index in self._store

    def keys(self) -> list[int]:
        return self._store.indices()

    def put(self, index: int, mask: np.ndarray) -> None:
        mask = np.asarray(mask, bool)
        if mask.shape != self.mask_shape:
            raise ValueError(f"PackedMaskStore holds {self.mask_shape} masks, got {mask.shape}")
        self._store.put(index, np.packbits(mask.reshape(-1)))

    def get(self, index: int, default=None):
        if index not in self._store:
            return default
        bits = np.unpackbits(self._store.get(index), count=int(np.prod(self.mask_shape)))
        return bits.reshape(self.mask_shape).astype(bool)

    def __getitem__(self, index: int) -> np.ndarray:
        if index not in self._store:
            raise KeyError(index)
        return self.get(index)

    def values(self) -> Iterator[np.ndarray]:
        for i in self.keys():
            yield self.get(i)

    def items(self) -> Iterator[tuple[int, np.ndarray]]:
        for i in self.keys():
            yield i, self.get(i)

    def close(self) -> None:
        self._store.close()


class CachedLoader:
    """``load(i)`` of a frame source (an image folder's files, a bag's messages) with the last few
    results kept, so that a sliding window decodes each frame once instead of once per use."""

    def __init__(self, load: Callable[[int], np.ndarray], cache_bytes: int = DEFAULT_CACHE_BYTES):
        self._load = load
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._limit = cache_bytes
        self._lock = threading.Lock()

    def __call__(self, index: int) -> np.ndarray:
        with self._lock:            # the build reads frames from two threads (ahead.Ahead)
            return self._call(index)

    def _call(self, index: int) -> np.ndarray:
        index = int(index)
        hit = self._cache.get(index)
        if hit is not None:
            self._cache.move_to_end(index)
            return hit
        array = self._load(index)
        if isinstance(array, np.ndarray):
            array.setflags(write=False)      # shared by every caller: nobody may change it in place
            self._cache[index] = array
            self._bytes += array.nbytes
            while self._bytes > self._limit and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._bytes -= old.nbytes
        return array

    def alive(self) -> int:
        return len(self._cache)


class AppendColumn:
    """A column of rows (``row_shape``, ``dtype``) appended chunk by chunk to a temporary file and
    read back whole once, at the end (``array()``): fusion's surfels. Kept in lists of chunks and
    concatenated, the world was in memory twice at the end of a build."""

    def __init__(self, row_shape: tuple[int, ...], dtype, directory: str | None = None):
        self.row_shape = tuple(int(s) for s in row_shape)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._file = tempfile.TemporaryFile(prefix="inspatio-column-", dir=directory)

    def __len__(self) -> int:
        return self.rows

    def append(self, chunk: np.ndarray) -> None:
        chunk = np.ascontiguousarray(chunk, dtype=self.dtype)
        if chunk.shape[1:] != self.row_shape:
            raise ValueError(f"AppendColumn holds rows of shape {self.row_shape}, got {chunk.shape[1:]}")
        self._file.write(memoryview(chunk).cast("B"))
        self.rows += len(chunk)

    def array(self) -> np.ndarray:
        """Every row appended so far, as one array (read from the file into it)."""
        out = np.empty((self.rows,) + self.row_shape, self.dtype)
        self._file.flush()
        self._file.seek(0)
        view = memoryview(out.reshape(-1).view(np.uint8)) if out.size else memoryview(b"")
        done = 0
        while done < len(view):
            got = self._file.readinto(view[done:])
            if not got:
                raise OSError(f"column file ended after {done} of {len(view)} bytes")
            done += got
        self._file.seek(0, os.SEEK_END)
        return out

    def close(self) -> None:
        self._file.close()
