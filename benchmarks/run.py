"""Speed and peak memory of the optimised library path next to the naive faithful path (issue 7).

For each recipe (smoke 64²/width 32, mid 128²/width 64, paper 256²/width 64) it measures the
training step (synthesis, forward, losses, backward, AdamW; batch 8), the whole reverse process
per image (optimised at batch 1 and 8, naive one image at a time), anomaly synthesis per batch
of 8, and AUPRO on 500 maps of 256². Optimised = the library defaults (sdpa attention, residual
blocks that recompute GroupNorm+SiLU in the backward pass, channels_last on the CPU with
weight gradients from NCHW copies, freed host memory kept in the heap, batched torch synthesis
on the training device, inference_mode, batched inference); naive = what the
authors' code does (explicit softmax(QKᵀ)V, contiguous NCHW, per-sample NumPy synthesis with
texture files decoded per sample, batch-1 inference with autograd on, official AUPRO).

Each path runs in its own fresh worker process (forked from a server that has only imported
the modules); the paths of one measurement take turns call by call (warm-up, then the median of
the repeats), so a change in the shared machine's load hits them alike. A path's peak memory is
its process's peak resident set (VmHWM) minus its resident set just before the first call (on CUDA:
torch.cuda.max_memory_allocated over the allocated bytes before), so one measurement's
allocations cannot hide in another's freed-but-cached memory.

    .venv/bin/python benchmarks/run.py --quick           # smoke + mid, under 6 minutes on 2 cores
    .venv/bin/python benchmarks/run.py                   # + paper recipe (training step once)
    .venv/bin/python benchmarks/run.py --device cuda --bf16 --infer-batches 1,32

The last line is ``train_speedup=X infer_speedup=Y synth_speedup=Z train_peak_mem_ratio=W``:
speedups are naive time / optimised time on the mid recipe, or on the largest recipe measured
without it (inference: naive per image vs optimised per image at the largest inference batch),
the memory ratio is optimised peak / naive peak of the training step on the largest recipe
measured (mid with --quick, else paper).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import ndimage  # noqa: E402

from benchmarks.naive import (  # noqa: E402
    NaiveSynthesizer,
    aupro_reference,
    reverse_process_one_by_one,
)
from transfusion_ad.conf_recipes import conf_recipe, project_parameters  # noqa: E402
from transfusion_ad.core.detector import Scoring, TransFusionDetector  # noqa: E402
from transfusion_ad.core.device import prepare_cpu  # noqa: E402
from transfusion_ad.core.metrics import aupro  # noqa: E402
from transfusion_ad.core.objective import compute_training_loss  # noqa: E402
from transfusion_ad.core.schedule import TransparencySchedule  # noqa: E402
from transfusion_ad.core.synthesis import AnomalySynthesizer  # noqa: E402
from transfusion_ad.core.unet import TransFusionUNet  # noqa: E402

TEXTURE_DIR = ROOT / "data" / "01_raw" / "sample" / "textures"
NOMINAL_PEAK_GFLOPS = 190.0
TRAIN_BATCH = 8
SYNTH_BATCH = 8
AUPRO_MAPS, AUPRO_SIZE = 500, 256
PAPER_EPOCHS = 1500
# The paper's recipe from conf/base, and the same architecture at two smaller sizes.
_PAPER = conf_recipe(ROOT)
RECIPES: dict[str, dict[str, Any]] = {
    "smoke": {**_PAPER, "image_size": 64, "base_width": 32},
    "mid": {**_PAPER, "image_size": 128},
    "paper": _PAPER,
}


# ----------------------------------------------------------------------------- worker side


def _rss_mib(field: str, source: str = "/proc/self/status") -> float:
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
            self.base = _rss_mib("VmRSS")

    def peak(self) -> tuple[float, float]:
        """(peak above the start, absolute peak) in MiB."""
        if self.device.type == "cuda":
            absolute = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            absolute = _rss_mib("VmHWM")
        return absolute - self.base, absolute


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(call: Callable[[], object], device: torch.device, warmup: int, repeats: int):
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


def _images(batch: int, size: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """Smooth random images (B, 3, S, S) in [-1, 1] standing in for a category's photos."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, size // 16, size // 16, generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic")
    detail = 0.1 * torch.rand(batch, 3, size, size, generator=g)
    return ((smooth + detail).clamp(0, 1) * 2 - 1).to(device)


def _texture_files() -> list[Path]:
    files = sorted(p for p in TEXTURE_DIR.glob("*") if p.suffix.lower() in {".jpg", ".png"})
    if not files:
        raise FileNotFoundError(
            f"No texture images in {TEXTURE_DIR}; the shipped sample textures are needed."
        )
    return files


def _texture_bank(size: int, device: torch.device) -> torch.Tensor:
    """Textures decoded and resized once, (K, 3, S, S) uint8 on the device (the pipeline's bank)."""
    bank = []
    for path in _texture_files():
        image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        bank.append(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))
    return torch.from_numpy(np.stack(bank)).permute(0, 3, 1, 2).contiguous().to(device)


def _model(spec: dict[str, Any], device: torch.device) -> TransFusionUNet:
    recipe = RECIPES[spec["recipe"]]
    torch.manual_seed(0)
    model = TransFusionUNet(
        base_width=recipe["base_width"],
        channel_mults=recipe["channel_mults"],
        num_res_blocks=recipe["num_res_blocks"],
        attention_levels=recipe["attention_levels"],
        attention="naive" if spec["path"] == "naive" else "sdpa",
    ).to(device)
    if spec["path"] == "optimised":
        model.enable_recompute()  # the trainer's default; naive: plain autograd keeps all
    if spec["path"] == "optimised" and (device.type == "cpu" or spec.get("channels_last")):
        model = model.to(memory_format=torch.channels_last)  # the library's CPU default
    if spec["path"] == "optimised" and spec.get("compile"):
        model = torch.compile(model)
    return model


def _train_call(spec: dict[str, Any], device: torch.device) -> Callable[[], object]:
    recipe = RECIPES[spec["recipe"]]
    size, steps = recipe["image_size"], recipe["num_steps"]
    model = _model(spec, device).train()
    schedule = TransparencySchedule(steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
    x0 = _images(TRAIN_BATCH, size, device)
    foreground = torch.ones(TRAIN_BATCH, 1, size, size, device=device)
    if spec["path"] == "naive":
        synthesizer = NaiveSynthesizer(_texture_files(), num_steps=steps, seed=0)

        def step() -> None:
            losses = compute_training_loss(model, schedule, synthesizer, x0, foreground)
            optimizer.zero_grad()
            losses["total"].backward()
            optimizer.step()
            [value.item() for value in losses.values()]  # per-term logging, one sync each

        return step
    synthesizer = AnomalySynthesizer(_texture_bank(size, device), num_steps=steps)
    generator = torch.Generator(device=device).manual_seed(0)
    autocast = torch.bfloat16 if spec.get("bf16") else None

    def optimised_step() -> None:
        losses = compute_training_loss(
            model, schedule, synthesizer, x0, foreground, generator=generator,
            autocast_dtype=autocast,
        )  # fmt: skip
        torch.stack([value.detach() for value in losses.values()]).tolist()  # the trainer's sync
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimizer.step()

    return optimised_step


def _infer_call(spec: dict[str, Any], device: torch.device) -> Callable[[], object]:
    recipe = RECIPES[spec["recipe"]]
    model = _model(spec, device).eval()
    schedule = TransparencySchedule(recipe["num_steps"])
    images = _images(spec["batch"], recipe["image_size"], device, seed=1)
    if spec["path"] == "naive":
        return lambda: reverse_process_one_by_one(model, schedule, images)
    detector = TransFusionDetector(
        model,
        schedule,
        recipe["image_size"],
        _conf_scoring(),
        precision="bf16" if spec.get("bf16") else "fp32",
    )
    pixels = ((images + 1) * 127.5).round().to(torch.uint8)  # the detector's input
    return lambda: detector.reverse(pixels)


def _conf_scoring() -> Scoring:
    """The scoring of the project's configuration (conf/base), as a run would use it."""
    parameters = project_parameters(ROOT)
    return Scoring.from_params(parameters["inference"], parameters["evaluation"])


def _synth_call(spec: dict[str, Any], device: torch.device) -> Callable[[], object]:
    recipe = RECIPES[spec["recipe"]]
    size, steps = recipe["image_size"], recipe["num_steps"]
    x0 = _images(SYNTH_BATCH, size, device)
    foreground = torch.ones(SYNTH_BATCH, 1, size, size, device=device)
    t = torch.randint(1, steps, (SYNTH_BATCH,), generator=torch.Generator().manual_seed(0))
    t = t.to(device)
    if spec["path"] == "naive":
        naive = NaiveSynthesizer(_texture_files(), num_steps=steps, seed=0)
        return lambda: naive(x0, foreground, t)
    synthesizer = AnomalySynthesizer(_texture_bank(size, device), num_steps=steps)
    generator = torch.Generator(device=device).manual_seed(0)
    return lambda: synthesizer(x0, foreground, t, generator=generator)


def aupro_category(images: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Box-filtered noise maps (N, S, S) float32 with disc defects on every other image."""
    rng = np.random.default_rng(seed)
    maps = ndimage.uniform_filter(
        rng.random((images, size, size), dtype=np.float32), size=(1, 7, 7)
    )
    masks = np.zeros((images, size, size), dtype=bool)
    rows, cols = np.ogrid[:size, :size]
    for index in range(1, images, 2):
        for _ in range(int(rng.integers(1, 4))):
            row, col = rng.integers(size // 8, size - size // 8, 2)
            masks[index] |= (rows - row) ** 2 + (cols - col) ** 2 < int(rng.integers(3, 20)) ** 2
        maps[index][masks[index]] += np.float32(rng.uniform(0.02, 0.1))
    return maps, masks


def _aupro_call(spec: dict[str, Any], device: torch.device) -> Callable[[], object]:
    maps, masks = aupro_category(AUPRO_MAPS, AUPRO_SIZE)
    function = aupro_reference if spec["path"] == "naive" else aupro
    return lambda: function(maps, masks)


_TASKS = {"train": _train_call, "infer": _infer_call, "synth": _synth_call, "aupro": _aupro_call}


def _limit_host_memory(growth_mib: float) -> None:
    """Let this process's address space grow by at most growth_mib, so a measurement too big
    for the machine fails with an allocation error instead of waking the OOM killer."""
    limit = int((_rss_mib("VmSize") + growth_mib) * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _out_of_memory(error: BaseException) -> bool:
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
        call = _TASKS[spec["task"]](spec, device)
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
            connection.send(("time", _timed(call, device, warmup=0, repeats=1)[0]))
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
        from benchmarks import run as module  # picklable by name, unlike __main__

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["benchmarks.run"])
        self.spec, self.times, self.error = spec, [], None
        self.connection, child = context.Pipe()
        self.process = context.Process(target=module.serve_measurement, args=(child, spec))
        self.process.start()
        child.close()
        self._expect("ready")

    def _expect(self, kind: str) -> Any:
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
        if self.error is None:
            self.connection.send("call")
            seconds = self._expect("time")
            if keep and seconds is not None:
                self.times.append(seconds)

    def finish(self) -> dict[str, Any]:
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


def forward_flops(recipe: dict[str, Any], backward: bool = False) -> float:
    """FLOPs of one batch-1 forward (or forward + backward), counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    size = recipe["image_size"]
    with torch.device("meta"):
        model = TransFusionUNet(
            base_width=recipe["base_width"],
            channel_mults=recipe["channel_mults"],
            num_res_blocks=recipe["num_res_blocks"],
            attention_levels=recipe["attention_levels"],
            attention="naive",
        )
        x = torch.zeros(1, 4, size, size)
        t = torch.zeros(1, dtype=torch.int64)
    counter = FlopCounterMode(display=False)
    with counter:
        outputs = model(x, t)
        if backward:
            sum(output.sum() for output in outputs).backward()
    return float(counter.get_total_flops())


def measured_matmul_gflops(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GEMM throughput of this device, a practical ceiling for the figures."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    times = _timed(lambda: a @ b, device, warmup=2, repeats=repeats)
    return 2 * size**3 / min(times) / 1e9


def _plan(args: argparse.Namespace) -> list[list[dict[str, Any]]]:
    """Every measurement to make, in groups measured side by side."""
    recipes = ["smoke", "mid"] if args.quick else ["smoke", "mid", "paper"]
    if args.recipes:
        recipes = args.recipes.split(",")
    cpu = torch.device(args.device).type == "cpu"
    base = {
        "device": args.device,
        "channels_last": args.channels_last,
        "bf16": args.bf16,
        "compile": args.compile,
    }
    quick = args.quick

    def group(task: str, recipe: str, batches: list[tuple[str, int]], warmup: int, repeats: int):
        return [
            {**base, "task": task, "recipe": recipe, "path": path, "batch": batch,
             "warmup": warmup, "repeats": repeats}
            for path, batch in batches
        ]  # fmt: skip

    plan = []
    for name in recipes:
        once = name == "paper" and cpu  # a 256² step takes minutes on the CPU: measured once
        plan.append(
            group(
                "train", name, [("optimised", TRAIN_BATCH), ("naive", TRAIN_BATCH)],
                warmup=0 if once else 1, repeats=1 if once else (2 if quick else 5),
            )
        )  # fmt: skip
        plan.append(
            group(
                "synth", name, [("optimised", SYNTH_BATCH), ("naive", SYNTH_BATCH)],
                warmup=5, repeats=20 if quick else 50,
            )
        )  # fmt: skip
        if name == "paper" and cpu and not args.paper_inference:
            continue
        small = name == "smoke" or not cpu
        batches = [("optimised", batch) for batch in args.infer_batches] + [("naive", 1)]
        repeats = (2 if quick else 3) if small else 1
        plan.append(group("infer", name, batches, warmup=1 if small else 0, repeats=repeats))
    plan.append(
        group("aupro", "-", [("optimised", AUPRO_MAPS), ("naive", AUPRO_MAPS)],
              warmup=0, repeats=1 if quick else 3)
    )  # fmt: skip
    tasks = args.tasks.split(",")
    return [specs for specs in plan if specs[0]["task"] in tasks]


def _per_call(result: dict[str, Any]) -> float:
    return statistics.median(result["times"])


def _row(spec: dict[str, Any], result: dict[str, Any], flops: dict[str, dict[str, float]]):
    """One record: seconds per unit (step, image, batch, call) and the GFLOP/s it implies."""
    seconds = _per_call(result)
    work = None
    if spec["task"] == "train":
        work = flops[spec["recipe"]]["train"] * spec["batch"]
    elif spec["task"] == "infer":
        steps = RECIPES[spec["recipe"]]["num_steps"] - 2
        work = flops[spec["recipe"]]["forward"] * steps
        seconds /= spec["batch"]
    return {
        "task": spec["task"],
        "recipe": spec["recipe"],
        "path": spec["path"],
        "batch": spec["batch"],
        "seconds": seconds,
        "repeats": len(result["times"]),
        "gflops": work / seconds / 1e9 if work else None,
        "peak_mib": result["peak_mib"],
        "absolute_peak_mib": result["absolute_peak_mib"],
    }


def _find(rows: list[dict], task: str, recipe: str, path: str, batch: int | None = None):
    for row in rows:
        if (row["task"], row["recipe"], row["path"]) == (task, recipe, path) and (
            batch is None or row["batch"] == batch
        ):
            return row
    return None


_UNITS = {
    "train": "s / step (batch 8)",
    "infer": "s / image",
    "synth": "ms / batch of 8",
    "aupro": "s / 500 maps 256²",
}


def _table(rows: list[dict], peaks: tuple[float, float]) -> str:
    """Markdown table; GFLOP/s with the share of the nominal peak and of the measured GEMM."""
    nominal, gemm = peaks
    lines = [
        "| recipe | measure | optimised | naive | speedup | optimised GFLOP/s (% of "
        f"{nominal:.0f} / of GEMM {gemm:.0f}) | naive GFLOP/s (%) | optimised peak MiB | "
        "naive peak MiB | memory ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def rate(r: dict | None) -> str:
        if r is None or r["gflops"] is None:
            return "–"
        share = f"{100 * r['gflops'] / nominal:.0f}% / {100 * r['gflops'] / gemm:.0f}%"
        return f"{r['gflops']:.0f} ({share})"

    for row in rows:
        if row["path"] != "optimised":
            continue
        naive = _find(rows, row["task"], row["recipe"], "naive")
        scale = 1000.0 if row["task"] == "synth" else 1.0
        label = _UNITS[row["task"]]
        if row["task"] == "infer":
            label = f"s / image, optimised batch {row['batch']} vs naive batch 1"
        lines.append(
            "| {} | {} | {:.3g} | {} | {} | {} | {} | {:.0f} | {} | {} |".format(
                row["recipe"],
                label,
                row["seconds"] * scale,
                f"{naive['seconds'] * scale:.3g}" if naive else "–",
                f"{naive['seconds'] / row['seconds']:.2f}×" if naive else "–",
                rate(row),
                rate(naive),
                row["peak_mib"],
                f"{naive['peak_mib']:.0f}" if naive else "–",
                f"{row['peak_mib'] / naive['peak_mib']:.2f}" if naive else "–",
            )
        )
    return "\n".join(lines)


def _summary(rows: list[dict], infer_batch: int) -> str:
    """The one-line result: speedups on the mid recipe (else the largest measured), the memory
    ratio of the training step on the largest recipe measured."""
    measured = [name for name in RECIPES if any(row["recipe"] == name for row in rows)]
    speed_recipe = "mid" if "mid" in measured else (measured[-1] if measured else "mid")
    largest = next(
        (name for name in reversed(measured) if _find(rows, "train", name, "naive")), "mid"
    )

    def ratio(task: str, recipe: str, batch: int | None = None, memory: bool = False) -> float:
        fast = _find(rows, task, recipe, "optimised", batch)
        slow = _find(rows, task, recipe, "naive")
        if not (fast and slow):
            return math.nan
        if memory:
            return fast["peak_mib"] / slow["peak_mib"]
        return slow["seconds"] / fast["seconds"]

    return (
        f"train_speedup={ratio('train', speed_recipe):.2f} "
        f"infer_speedup={ratio('infer', speed_recipe, infer_batch):.2f} "
        f"synth_speedup={ratio('synth', speed_recipe):.2f} "
        f"train_peak_mem_ratio={ratio('train', largest, memory=True):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke + mid recipes, few repeats")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--recipes", help="comma-separated subset of smoke,mid,paper")
    parser.add_argument(
        "--tasks", default="train,synth,infer,aupro", help="comma-separated subset to measure"
    )
    parser.add_argument(
        "--infer-batches", default="1,8", help="optimised inference batch sizes (default 1,8)"
    )
    parser.add_argument(
        "--paper-inference",
        action="store_true",
        help="also time the 256² reverse process on CPU (about a minute per image and the naive "
        "path's retained graphs need ~30 GB; off by default)",
    )
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="optimised model in NHWC on CUDA too (always on the CPU, the library default)",
    )
    parser.add_argument("--bf16", action="store_true", help="optimised path under bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="torch.compile the optimised model")
    parser.add_argument("--json", type=Path, help="also write every record to this JSON file")
    args = parser.parse_args()
    args.infer_batches = [int(b) for b in args.infer_batches.split(",")]
    start = time.perf_counter()
    device = torch.device(args.device)
    flops = {
        name: {"forward": forward_flops(recipe), "train": forward_flops(recipe, backward=True)}
        for name, recipe in RECIPES.items()
    }
    peak = measured_matmul_gflops(device)
    nominal = NOMINAL_PEAK_GFLOPS if device.type == "cpu" else peak
    print(
        f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"fp32 GEMM {peak:.0f} GFLOP/s measured, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    for name, counted in flops.items():
        print(
            f"{name}: {counted['forward'] / 1e9:.1f} GFLOP per forward, "
            f"{counted['train'] / 1e9:.1f} GFLOP per forward+backward (batch 1)",
            flush=True,
        )
    rows, failures = [], []
    for specs in _plan(args):
        for spec in specs:
            if device.type == "cpu":
                spec["memory_limit_mib"] = _rss_mib("MemAvailable", "/proc/meminfo") - 1024
        for spec, result in zip(specs, measure_group(specs), strict=True):
            label = f"{spec['task']:5} {spec['recipe']:5} {spec['path']:9} batch {spec['batch']:3}"
            if "error" in result:
                failures.append(f"{label}: {result['error']}")
                print(f"  {failures[-1]}", flush=True)
                continue
            rows.append(_row(spec, result, flops))
            print(
                f"  {label}: {rows[-1]['seconds']:.4g} s, peak +{rows[-1]['peak_mib']:.0f} MiB "
                f"(elapsed {time.perf_counter() - start:.0f} s, load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    print(_table(rows, (nominal, peak)))
    for failure in failures:
        print(f"not measured: {failure}")
    _print_paper_hours(rows)
    if args.json:
        args.json.write_text(json.dumps({"flops": flops, "gemm_gflops": peak, "rows": rows}))
    print(f"total {time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.2f}")
    print(_summary(rows, max(args.infer_batches)))


def _print_paper_hours(rows: list[dict]) -> None:
    """Implied hours per category for the paper's 1500 epochs (209 images: MVTec bottle)."""
    step = _find(rows, "train", "paper", "optimised")
    if step is None:
        return
    steps = PAPER_EPOCHS * math.ceil(209 / TRAIN_BATCH)
    print(
        f"paper recipe: {TRAIN_BATCH / step['seconds']:.2f} images/s, {steps} steps per "
        f"category (209 images, {PAPER_EPOCHS} epochs) -> {steps * step['seconds'] / 3600:.1f} h"
    )


if __name__ == "__main__":
    main()
