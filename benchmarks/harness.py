"""How the speed benchmark measures: one fresh worker process per path, driven call by call.

The orchestrator forks each worker from a forkserver that has only imported this module (and
so the workloads), so no thread pool, CUDA context or allocation of one measurement leaks into
another. A worker builds its call from ``workloads.TASKS``, caps its address space so a
measurement too big for the machine fails cleanly, and answers one timed call per message; at
the end it reports its peak memory above what it held just before the first call.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch

from benchmarks.workloads import TASKS
from transfusion_ad.core.device import prepare_cpu

# ----------------------------------------------------------------------------- worker side


def rss_mib(field: str, source: str = "/proc/self/status") -> float:
    """A kB field of /proc (VmRSS, VmHWM, VmSize of this process; MemAvailable), in MiB."""
    for line in Path(source).read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not found in {source}; peak memory needs Linux")


class _Memory:
    """Peak memory of everything after ``start()``: RSS on CPU, the caching allocator on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = 0.0

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20
        else:
            self.base = rss_mib("VmRSS")

    def peak(self) -> tuple[float, float]:
        """(peak above the start, absolute peak) in MiB."""
        if self.device.type == "cuda":
            absolute = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            absolute = rss_mib("VmHWM")
        return absolute - self.base, absolute


def _sync(device: torch.device) -> None:
    """Wait for the device's queued work, so a timing covers it (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(
    call: Callable[[], object], device: torch.device, warmup: int, repeats: int
) -> list[float]:
    """Seconds of each repeat after the warm-up calls, the device synchronised around each."""
    for _ in range(warmup):
        call()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _limit_host_memory(growth_mib: float) -> None:
    """Let this process's address space grow by at most growth_mib, so a measurement too big
    for the machine fails with an allocation error instead of waking the OOM killer."""
    limit = int((rss_mib("VmSize") + growth_mib) * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _out_of_memory(error: BaseException) -> bool:
    """Whether an error is a failed allocation (reported as "out of memory"), not a bug."""
    return isinstance(error, MemoryError) or (
        isinstance(error, RuntimeError) and "allocate" in str(error)
    )


def serve_measurement(connection: Connection, spec: dict[str, Any]) -> None:
    """Worker process: build the measured call, then answer "call" (run it once, reply its
    seconds) and "stop" (reply the peak memory since just before the first call) messages."""
    device = torch.device(spec["device"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        if spec["path"] == "optimised":
            prepare_cpu()  # what the entry points do on the CPU
        if spec.get("memory_limit_mib"):
            _limit_host_memory(spec["memory_limit_mib"])
    oom = f"out of memory (more than {spec.get('memory_limit_mib', 0):.0f} MiB)"
    try:
        call = TASKS[spec["task"]](spec, device)
    except (MemoryError, RuntimeError) as error:
        if not _out_of_memory(error):
            raise
        connection.send(("error", oom))
        return
    memory = _Memory(device)
    memory.start()
    connection.send(("ready", None))
    while connection.recv() == "call":
        try:
            connection.send(("time", timed(call, device, warmup=0, repeats=1)[0]))
        except (MemoryError, RuntimeError) as error:
            if not _out_of_memory(error):
                raise
            connection.send(("error", oom))
            return
    connection.send(("peak", memory.peak()))


# ------------------------------------------------------------------------ orchestrator side


class _Worker:
    """One measurement in its own process, forked from a server that has only imported the
    modules (no thread pool, no CUDA context, nothing allocated), driven call by call."""

    def __init__(self, spec: dict[str, Any]) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["benchmarks.harness"])
        self.spec, self.times, self.error = spec, [], None
        self.connection, child = context.Pipe()
        self.process = context.Process(target=serve_measurement, args=(child, spec))
        self.process.start()
        child.close()
        self._expect("ready")

    def _expect(self, kind: str) -> Any:
        """The worker's next answer if it is of this kind; None (and the error kept) if it
        failed or died."""
        try:
            got, value = self.connection.recv()
        except EOFError:
            got, value = "error", "the worker died (killed for memory?)"
        if got == "error":
            self.error = value
            return None
        if got != kind:
            raise RuntimeError(f"worker for {self.spec} answered {got!r}, expected {kind!r}")
        return value

    def call(self, keep: bool) -> None:
        """Time one call in the worker; keep its seconds unless it is a warm-up."""
        if self.error is None:
            self.connection.send("call")
            seconds = self._expect("time")
            if keep and seconds is not None:
                self.times.append(seconds)

    def finish(self) -> dict[str, Any]:
        """Stop the worker: its kept times and peak memory, or the error that stopped it."""
        peak = None
        if self.error is None:
            self.connection.send("stop")
            peak = self._expect("peak")
        self.process.join()
        if self.error is not None:
            return {"error": self.error}
        return {"times": self.times, "peak_mib": peak[0], "absolute_peak_mib": peak[1]}


def measure_group(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Measure paths side by side. With more than one repeat the workers live together and
    take turns call by call, so a change in the machine's load hits every path alike; a single
    call (the 256² training step on CPU) runs one worker at a time to keep memory low."""
    warmup, repeats = specs[0]["warmup"], specs[0]["repeats"]
    if repeats > 1:
        workers = [_Worker(spec) for spec in specs]
        for index in range(warmup + repeats):
            for worker in workers:
                worker.call(keep=index >= warmup)
        return [worker.finish() for worker in workers]
    results = []
    for spec in specs:
        worker = _Worker(spec)
        for index in range(warmup + repeats):
            worker.call(keep=index >= warmup)
        results.append(worker.finish())
    return results


VECTOR_EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_extensions(source: str = "/proc/cpuinfo") -> str:
    """The CPU's vector extensions that decide these ratios, e.g. ``"avx2 fma"``: every figure
    is recorded with them, since fp32 and bf16 speeds differ between AVX2, AVX-512 and AMX."""
    try:
        text = Path(source).read_text()
    except OSError:
        return "unknown"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])  # fmt: skip
    return " ".join(name for name in VECTOR_EXTENSIONS if name in flags) or "none of " + ",".join(
        VECTOR_EXTENSIONS
    )
