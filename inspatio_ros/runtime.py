"""Process-level tuning for long-running rendering processes (CLI, node, benchmarks).

Rendering allocates and frees tensors of tens of MB every frame. glibc serves such blocks with
fresh mmap()s and returns them to the OS on free, so every frame page-faults its memory in again.
On virtual machines with memory ballooning that costs far more than the arithmetic (measured
here: a 3-camera 640x360 CPU render took 19 s instead of 0.8 s). Raising glibc's mmap and trim
thresholds keeps freed blocks in the heap for reuse. Only the calling process is affected, and
only where glibc is the C library.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def _mallopt():
    """glibc's mallopt(param, value) -> 1 on success, or None where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return mallopt


def keep_freed_memory(threshold_bytes: int = 1 << 30) -> bool:
    """Ask glibc to keep freed blocks below ``threshold_bytes`` for reuse; True if applied."""
    global _done
    if _done:
        return _done
    mallopt = _mallopt()
    if mallopt is None:
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, min(threshold_bytes, 1 << 30)) == 1
    ok &= mallopt(_M_TRIM_THRESHOLD, threshold_bytes) == 1
    _done = bool(ok)
    return _done


def return_free_memory() -> bool:
    """Give the free memory inside glibc's heaps back to the OS now (malloc_trim(0): whole free
    pages, also in the middle of a heap); True if anything was returned. For one-off peaks that
    keep_freed_memory would otherwise hold for good, e.g. right after the renderer's start-up
    compilation. Blocks freed later are kept again as before."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    return trim(0) == 1


def release_large_blocks(threshold_bytes: int = 1 << 20) -> bool:
    """Serve blocks of ``threshold_bytes`` and more with their own mmap() and unmap them on free
    (a fixed threshold: glibc otherwise raises it up to 32 MB after the first such free, and then
    keeps the blocks in its heaps); True if applied. The opposite of keep_freed_memory."""
    mallopt = _mallopt()
    return mallopt is not None and mallopt(_M_MMAP_THRESHOLD, threshold_bytes) == 1


def pin_host_memory(address: int, nbytes: int) -> bool:
    """Page-lock an existing host buffer for CUDA (cudaHostRegister), so device-to-host copies into
    it run asynchronously at full bus speed; False where there is no CUDA or the driver refuses.

    Why not pinned tensors: PyTorch's pinned-memory allocator rounds each block up to a power of
    two and keeps it for reuse, so buffers the node already has (the writer processes' shared
    memory) would be duplicated, and a 1080p depth batch of 25 MB would hold 32 MB.
    """
    import torch

    if not torch.cuda.is_available() or nbytes <= 0:
        return False
    cudart = torch.cuda.cudart()
    return cudart.cudaHostRegister(address, nbytes, 0) == cudart.cudaError.success


def unpin_host_memory(address: int) -> None:
    """Undo pin_host_memory (before the buffer is unmapped)."""
    import torch

    cudart = torch.cuda.cudart()
    cudart.cudaHostUnregister(address)


def use_numba_workqueue() -> None:
    """numba's own thread pool for this process's CPU kernels, unless NUMBA_THREADING_LAYER says
    otherwise. Its OpenMP pool (the default where libgomp exists) stalled whenever other processes
    wanted the cores too, as the node's writer and the DDS readers do on a 2-core machine: a frame
    took 560 ms instead of 77 ms (measured under load). Call before the first kernel compiles."""
    import os

    import numba

    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "workqueue"


_kernel_modules: dict = {}
_kernel_thread = threading.local()
_serial_twins: dict = {}
_twin_lock = threading.Lock()


def in_serial_kernels() -> bool:
    """Whether this thread runs the single-threaded twins of the numba kernels (within
    :func:`serial_kernels`)."""
    return getattr(_kernel_thread, "serial", False)


@contextmanager
def serial_kernels():
    """Within it, this thread's CPU kernels (the renderer's, the view check's, MVS's: every call
    that goes through :func:`thread_kernel`) run their single-threaded twins, so that two threads
    can each run kernels on a core of their own: numba's workqueue pool, which the parallel
    kernels use, aborts the process when two threads enter it at once."""
    before = in_serial_kernels()
    _kernel_thread.serial = True
    try:
        yield
    finally:
        _kernel_thread.serial = before


def serial_twin(kernel):
    """The numba ``kernel`` compiled without ``parallel`` (its prange loops run as plain loops),
    made once per process. A copy of the Python function under its own name, so numba's disk
    cache (keyed by the function's name and bytecode, not by the parallel flag) keeps the two
    apart; compiled with the options of the kernel's module (its ``opts``)."""
    import types

    import numba

    if kernel in _serial_twins:
        return _serial_twins[kernel]
    with _twin_lock:
        if kernel not in _serial_twins:
            f = kernel.py_func
            twin = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial", f.__defaults__,
                                      f.__closure__)
            twin.__qualname__ = f.__qualname__ + "_serial"
            twin.__doc__ = f.__doc__
            opts = dict(getattr(sys.modules[f.__module__], "opts", {}))
            _serial_twins[kernel] = numba.njit(parallel=False, **opts)(twin)
    return _serial_twins[kernel]


def thread_kernel(kernel):
    """``kernel`` itself, or its single-threaded twin (serial_twin) within :func:`serial_kernels`.
    Kernels without ``parallel`` are their own twin."""
    if not in_serial_kernels() or not kernel.targetoptions.get("parallel"):
        return kernel
    return serial_twin(kernel)


def optional_cpu_kernels(module: str):
    """The numba kernel module ``module`` (dotted name), imported once per process; None without
    numba or with INSPATIO_CPU_KERNELS=0 (the caller then runs its eager PyTorch path)."""
    import importlib
    import os

    if os.environ.get("INSPATIO_CPU_KERNELS") == "0":
        return None
    if module not in _kernel_modules:
        try:
            use_numba_workqueue()
        except ImportError:
            _kernel_modules[module] = None
        else:
            _kernel_modules[module] = importlib.import_module(module)
    return _kernel_modules[module]

