"""Speed and peak memory of the optimised library path next to the naive faithful path (issue 7).

For each recipe (smoke 64²/width 32, mid 128²/width 64, paper 256²/width 64) it measures the
training step (synthesis, forward, losses, backward, AdamW; batch 8), the whole reverse process
per image (optimised at batch 1 and 8, naive one image at a time), anomaly synthesis per batch
of 8, and AUPRO on 500 maps of 256². Optimised = the library defaults (sdpa attention, residual
blocks that recompute GroupNorm+SiLU in the backward pass, channels_last on the CPU with
weight gradients from NCHW copies, freed host memory kept in the heap, batched torch synthesis
on the training device, inference_mode, batched inference); naive = what the
authors' code does (explicit softmax(QKᵀ)V, contiguous NCHW, per-sample NumPy synthesis with
texture files decoded per sample, batch-1 inference under torch.no_grad, official AUPRO).

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
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.flops import NOMINAL_PEAK_GFLOPS, forward_flops, measured_matmul_gflops  # noqa: E402
from benchmarks.harness import cpu_extensions, measure_group, rss_mib  # noqa: E402
from benchmarks.tables import authors_table, print_paper_hours, row, summary, table  # noqa: E402
from benchmarks.workloads import AUPRO_MAPS, RECIPES, SYNTH_BATCH, TRAIN_BATCH  # noqa: E402


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
        "num_steps": args.num_steps,
        "nchw": args.nchw,
        "no_recompute": args.no_recompute,
    }
    quick = args.quick

    def group(
        task: str, recipe: str, batches: list[tuple[str, int]], warmup: int, repeats: int
    ) -> list[dict[str, Any]]:
        return [
            {**base, "task": task, "recipe": recipe, "path": path, "batch": batch,
             "warmup": warmup, "repeats": repeats}
            for path, batch in batches
        ]  # fmt: skip

    authors = [("authors", TRAIN_BATCH)] if args.authors_repo else []
    if args.authors_repo:
        base["authors_repo"] = str(args.authors_repo.resolve())
    plan = []
    for name in recipes:
        once = name == "paper" and cpu  # a 256² step takes minutes on the CPU: measured once
        plan.append(
            group(
                "train", name, [("optimised", TRAIN_BATCH), ("naive", TRAIN_BATCH), *authors],
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
        batches += [("authors", 1)] if args.authors_repo else []
        repeats = (2 if quick else 3) if small else 1
        plan.append(group("infer", name, batches, warmup=1 if small else 0, repeats=repeats))
    plan.append(
        group("aupro", "-", [("optimised", AUPRO_MAPS), ("naive", AUPRO_MAPS)],
              warmup=0, repeats=1 if quick else 3)
    )  # fmt: skip
    tasks, paths = args.tasks.split(","), args.paths.split(",")
    if args.authors_repo and "authors" not in paths:
        paths.append("authors")
    plan = [[spec for spec in specs if spec["path"] in paths] for specs in plan]
    return [specs for specs in plan if specs and specs[0]["task"] in tasks]


def main() -> None:
    """Measure the plan, print the table and the summary line, and write --json if asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke + mid recipes, few repeats")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--recipes", help="comma-separated subset of smoke,mid,paper")
    parser.add_argument(
        "--tasks", default="train,synth,infer,aupro", help="comma-separated subset to measure"
    )
    parser.add_argument(
        "--paths", default="optimised,naive", help="measure one path only: optimised or naive"
    )
    parser.add_argument(
        "--authors-repo",
        type=Path,
        help="a CPU-patched checkout of the authors' code: also time it (training step and "
        "inference), the real anchor of the ratios (benchmarks/authors_path.py)",
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
    parser.add_argument(
        "--nchw", action="store_true", help="optimised model in NCHW on the CPU (not channels_last)"
    )
    parser.add_argument(
        "--no-recompute", action="store_true", help="optimised model without the recompute trick"
    )
    parser.add_argument(
        "--num-steps",
        type=int,
        help="optimised inference visits k of the T-2 steps (inference.num_steps; default all)",
    )
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
    extensions = cpu_extensions()
    print(
        f"device {args.device}, CPU extensions {extensions}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, fp32 GEMM {peak:.0f} GFLOP/s measured, load "
        f"average {os.getloadavg()[0]:.2f}",
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
                spec["memory_limit_mib"] = rss_mib("MemAvailable", "/proc/meminfo") - 1024
        for spec, result in zip(specs, measure_group(specs), strict=True):
            label = f"{spec['task']:5} {spec['recipe']:5} {spec['path']:9} batch {spec['batch']:3}"
            if "error" in result:
                failures.append(f"{label}: {result['error']}")
                print(f"  {failures[-1]}", flush=True)
                continue
            rows.append({**row(spec, result, flops), "cpu_extensions": extensions})
            print(
                f"  {label}: {rows[-1]['seconds']:.4g} s, peak +{rows[-1]['peak_mib']:.0f} MiB "
                f"(elapsed {time.perf_counter() - start:.0f} s, load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    print(table(rows, (nominal, peak)))
    print(authors_table(rows))
    for failure in failures:
        print(f"not measured: {failure}")
    print_paper_hours(rows)
    if args.json:
        record = {"cpu_extensions": extensions, "flops": flops, "gemm_gflops": peak, "rows": rows}
        args.json.write_text(json.dumps(record))
    print(f"total {time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.2f}")
    print(summary(rows, max(args.infer_batches)))


if __name__ == "__main__":
    main()
