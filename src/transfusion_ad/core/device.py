"""Choose the torch device once, from a config string, so the rest stays device-agnostic; and
the one process-wide CPU setting the entry points make (``prepare_cpu``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import re

import torch

logger = logging.getLogger(__name__)

_ALLOWED = '"auto", "cpu", "cuda", "cuda:N" or "mps"'
_CUDA_PATTERN = re.compile(r"cuda(?::(\d+))?")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a device name into a ``torch.device``.

    "auto" picks CUDA, then MPS, then CPU. An explicit accelerator that is not present is an error
    here rather than a confusing failure deep inside training.
    """
    if not isinstance(name, str):
        raise ValueError(f"Device name must be a string ({_ALLOWED}), got {name!r}.")
    key = name.strip().lower()
    if key == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if key == "cpu":
        return torch.device("cpu")
    if key == "mps":
        if not _mps_available():
            raise ValueError(
                'Device "mps" was requested but MPS is not available; use "auto" or "cpu".'
            )
        return torch.device("mps")
    match = _CUDA_PATTERN.fullmatch(key)
    if match is None:
        raise ValueError(f"Unknown device {name!r}; allowed: {_ALLOWED}.")
    if not torch.cuda.is_available():
        raise ValueError(
            f"Device {name!r} was requested but CUDA is not available; use 'auto' or 'cpu'."
        )
    index = match.group(1)
    if index is not None and int(index) >= torch.cuda.device_count():
        raise ValueError(
            f"Device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible."
        )
    return torch.device(key)


@functools.cache
def prepare_cpu() -> bool:
    """The process-wide CPU setting, made once by the entry points (the Kedro hook, the
    ``transfusion-ad`` commands, the MLflow model) before any network runs, and logged once:
    ``keep_freed_host_memory``. Library users call it themselves. It changes speed, not values.
    Returns whether the setting took effect."""
    kept = keep_freed_host_memory()
    if kept:
        logger.info("CPU: freed blocks under 128 MiB stay in the process heap (glibc mallopt).")
    return kept


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BYTES = 128 << 20


def keep_freed_host_memory() -> bool:
    """Make glibc keep freed blocks under 128 MiB in the heap instead of returning them.

    A CPU training step allocates and frees hundreds of multi-megabyte activations; by default
    glibc maps each afresh, so the kernel faults in and zeroes every page again (measured once
    as a large share of a step's system time, benchmarks/README.md). Raising the mmap and trim
    thresholds reuses the pages, as tcmalloc or jemalloc would. Blocks of 128 MiB and more (a
    256², batch-8, 64-channel activation) are still mapped per use: kept too, they fragment the
    heap and raised the 256² training peak. It is process-wide and lasts until the process
    exits. Returns False, changing nothing, where the C library is not glibc (macOS, Windows,
    musl).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES) and mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))


def make_deterministic() -> None:
    """Bit-identical CUDA runs for the rest of the process: deterministic algorithms (an op
    without a deterministic kernel then raises, naming itself), the cuBLAS workspace setting
    (read when cuBLAS first starts, so this must run before the first CUDA matmul: it does
    when training calls it, in a Ray worker too) and cuDNN without benchmark. It costs speed
    on CUDA; CPU runs are bit-identical without it."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    logger.info("Deterministic algorithms on (training.deterministic: true).")
