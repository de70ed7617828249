"""How the speed benchmark reports: records, the markdown table and the one-line summary.

``row`` turns a worker's times and peak memory into the record that ``--json`` writes;
``table``, ``summary`` and ``print_paper_hours`` read those records to compare the optimised
path with the naive one (speedup, GFLOP/s, memory ratio, implied training hours).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from benchmarks.workloads import RECIPES, TRAIN_BATCH

PAPER_EPOCHS = 1500


def _per_call(result: dict[str, Any]) -> float:
    """The median of a worker's kept times, robust to a stray slow call."""
    return statistics.median(result["times"])


def row(
    spec: dict[str, Any], result: dict[str, Any], flops: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """One record: seconds per unit (step, image, batch, call) and the GFLOP/s it implies."""
    seconds = _per_call(result)
    work = None
    if spec["task"] == "train":
        work = flops[spec["recipe"]]["train"] * spec["batch"]
    elif spec["task"] == "infer":
        steps = RECIPES[spec["recipe"]]["num_steps"] - 2
        if spec["path"] == "optimised" and spec.get("num_steps"):
            steps = spec["num_steps"]
        work = flops[spec["recipe"]]["forward"] * steps
        seconds /= spec["batch"]
    return {
        "task": spec["task"],
        "recipe": spec["recipe"],
        "path": spec["path"],
        "batch": spec["batch"],
        "seconds": seconds,
        "bf16": bool(spec.get("bf16")) and spec["path"] == "optimised",
        "network_calls": steps if spec["task"] == "infer" else None,
        "repeats": len(result["times"]),
        "gflops": work / seconds / 1e9 if work else None,
        "peak_mib": result["peak_mib"],
        "absolute_peak_mib": result["absolute_peak_mib"],
    }


def _find(
    rows: list[dict], task: str, recipe: str, path: str, batch: int | None = None
) -> dict | None:
    """The first record of this task, recipe and path (and batch, if given), else None."""
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


def table(rows: list[dict], peaks: tuple[float, float]) -> str:
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


def summary(rows: list[dict], infer_batch: int) -> str:
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


def authors_table(rows: list[dict]) -> str:
    """The optimised path against the authors' own code measured in the same run (empty when
    it was not measured): seconds per step or per image, and the ratio authors / optimised."""
    lines = []
    for row in rows:
        authors = _find(rows, row["task"], row["recipe"], "authors")
        if row["path"] != "optimised" or authors is None:
            continue
        label = _UNITS[row["task"]]
        if row["task"] == "infer":
            label = f"s / image, optimised batch {row['batch']} vs authors batch 1"
        lines.append(
            f"| {row['recipe']} | {label} | {row['seconds']:.3g} | {authors['seconds']:.3g} | "
            f"{authors['seconds'] / row['seconds']:.2f}× |"
        )
    if not lines:
        return ""
    header = "| recipe | measure | optimised | authors' code | vs authors |\n|---|---|---|---|---|"
    return "\n".join([header, *lines])


def print_paper_hours(rows: list[dict]) -> None:
    """Implied hours per category for the paper's 1500 epochs (209 images: MVTec bottle)."""
    step = _find(rows, "train", "paper", "optimised")
    if step is None:
        return
    steps = PAPER_EPOCHS * math.ceil(209 / TRAIN_BATCH)
    print(
        f"paper recipe: {TRAIN_BATCH / step['seconds']:.2f} images/s, {steps} steps per "
        f"category (209 images, {PAPER_EPOCHS} epochs) -> {steps * step['seconds'] / 3600:.1f} h"
    )
