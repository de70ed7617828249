"""Summarise a benchmarks/gpu_check.sh run into gpu_check.json and gpu_check.md, against the
issue's goals on a GPU: inference at most 0.05 s per image at 256 px, synthesis at most 5 % of a
training step, and a training loss that falls.

    .venv/bin/python benchmarks/gpu_summary.py benchmarks/gpu_check
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

INFERENCE_GOAL_S = 0.05  # per image at 256 px (the paper: 0.34 s)
SYNTHESIS_SHARE_GOAL = 0.05  # of a training step


def _steps(folder: Path) -> dict[str, dict[str, Any]]:
    """steps.txt lines "ok|failed <name> <seconds>" -> {name: {"ok": bool, "seconds": int}}."""
    path = folder / "steps.txt"
    lines = path.read_text().split("\n") if path.is_file() else []
    parsed = [line.split() for line in lines if line.strip()]
    return {name: {"ok": state == "ok", "seconds": int(s)} for state, name, s in parsed}


def _tests(folder: Path) -> dict[str, int] | None:
    path = folder / "cuda_tests.xml"
    if not path.is_file():
        return None
    suite = ElementTree.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    keys = ("tests", "failures", "errors", "skipped")
    return {key: int(suite.get(key, 0)) for key in keys}


def _bench(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / f"{name}.json"
    if not path.is_file():
        return None
    rows = json.loads(path.read_text())["rows"]

    def seconds(task: str, batch: int | None = None) -> float | None:
        found = [r for r in rows if r["task"] == task and batch in (None, r["batch"])]
        return found[0]["seconds"] if found else None

    step, synth = seconds("train"), seconds("synth")
    return {
        "train_step_s": step,
        "images_per_s": 8 / step if step else None,
        "synthesis_share": synth / step if step and synth else None,
        "infer_s_per_image_batch1": seconds("infer", 1),
        "infer_s_per_image_batch32": seconds("infer", 32),
    }


def _training(folder: Path) -> dict[str, Any] | None:
    path = folder / "training_history.json"
    if not path.is_file():
        return None
    totals = [result["losses"]["total"] for result in json.loads(path.read_text())["results"]]
    if not totals:
        return None
    return {
        "epochs": len(totals),
        "first": totals[0],
        "last": totals[-1],
        "falls": totals[-1] < totals[0],
    }


def _fast(folder: Path) -> dict[str, Any] | None:
    """The conf/fast run's metrics (step 5), when it wrote them."""
    path = folder / "fast_metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    return {name: metrics.get(name) for name in ("image_auroc", "pixel_auroc", "aupro")}


def _goals(benches: dict[str, dict | None], training: dict | None) -> dict[str, bool | None]:
    measured = [b for b in benches.values() if b]
    inference = [b["infer_s_per_image_batch32"] for b in measured if b["infer_s_per_image_batch32"]]
    shares = [b["synthesis_share"] for b in measured if b["synthesis_share"] is not None]
    return {
        "inference_at_most_0.05_s_per_image": min(inference) <= INFERENCE_GOAL_S
        if inference
        else None,
        "synthesis_at_most_5_percent_of_a_step": min(shares) <= SYNTHESIS_SHARE_GOAL
        if shares
        else None,
        "training_loss_falls": training["falls"] if training else None,
    }


def summarise(folder: Path) -> dict[str, Any]:
    """Everything the check measured, and each goal met (True), missed (False) or unmeasured."""
    gpu_log = folder / "gpu.log"
    benches = {name: _bench(folder, name) for name in ("bench_bf16", "bench_compile")}
    training = _training(folder)
    return {
        "gpu": gpu_log.read_text().strip().splitlines()[-1] if gpu_log.is_file() else None,
        "steps": _steps(folder),
        "cuda_tests": _tests(folder),
        "benchmarks": benches,
        "training": training,
        "fast": _fast(folder),
        "goals": _goals(benches, training),
    }


def to_markdown(summary: dict[str, Any]) -> str:
    """The summary as a short Markdown page."""
    lines = [f"# GPU check: {summary['gpu'] or 'no GPU recorded'}", "", "| step | result | s |"]
    lines.append("|---|---|---|")
    for name, step in summary["steps"].items():
        lines.append(f"| {name} | {'ok' if step['ok'] else 'FAILED'} | {step['seconds']} |")
    lines += ["", f"cuda tests: {summary['cuda_tests']}", "", "| benchmark | value |", "|---|---|"]
    for name, values in summary["benchmarks"].items():
        for key, value in (values or {}).items():
            shown = "–" if value is None else f"{value:.4g}"
            lines.append(f"| {name} {key} | {shown} |")
    lines += ["", f"training: {summary['training']}", f"conf/fast: {summary['fast']}"]
    lines += ["", "| goal | met |", "|---|---|"]
    lines += [f"| {goal} | {met} |" for goal, met in summary["goals"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    folder = Path(sys.argv[1])
    summary = summarise(folder)
    (folder / "gpu_check.json").write_text(json.dumps(summary, indent=1) + "\n")
    (folder / "gpu_check.md").write_text(to_markdown(summary))
    print(to_markdown(summary))


if __name__ == "__main__":
    main()
