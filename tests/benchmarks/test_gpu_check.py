"""benchmarks/gpu_check.sh's CPU-side parts: its arguments, its plan, the cuda tests it runs
(collected here, skipped without a GPU) and the summary it writes against the GPU goals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_summary import summarise, to_markdown

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_dry_run_prints_every_step_and_runs_nothing(tmp_path):
    result = _check(
        "--dry-run", "--out", str(tmp_path / "out"), "--epochs", "5", "--fast-epochs", "7"
    )
    assert result.returncode == 0, result.stderr
    steps = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert list(steps) == ["gpu", "tests", "bench_bf16", "bench_compile", "training", "fast"]
    assert "--env fast --pipelines=train_eval" in steps["fast"]
    assert "training.epochs=7" in steps["fast"]
    assert "-m cuda tests/test_cuda.py" in steps["tests"]
    assert (
        "--device cuda --recipes paper" in steps["bench_bf16"] and "--bf16" in steps["bench_bf16"]
    )
    assert "--compile" in steps["bench_compile"]
    assert "training.epochs=5" in steps["training"] and "training.bf16=true" in steps["training"]
    assert not (tmp_path / "out").exists()
    skipped = _check("--dry-run", "--skip-compile")
    assert "bench_compile" not in skipped.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown option '--bogus'"),
        (["--epochs", "0"], "positive integer"),
        (["--fast-epochs", "x"], "--fast-epochs needs a positive integer"),
    ],
)
def test_bad_arguments_are_named(args, message):
    result = _check(*args)
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_so_and_writes_nothing(tmp_path):
    result = _check("--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "no CUDA GPU" in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_cuda_tests_are_collected_and_skipped_here():
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-m",
            "cuda",
            "tests/test_cuda.py",
        ],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "8 tests collected" in collected.stdout, collected.stdout[-2000:]


def test_the_summary_checks_the_goals(tmp_path):
    (tmp_path / "steps.txt").write_text("ok gpu 2\nok tests 40\nfailed bench_compile 90\n")
    (tmp_path / "gpu.log").write_text("Tue Dec 1\n2.14.1 NVIDIA H200\n")
    (tmp_path / "cuda_tests.xml").write_text(
        '<testsuites><testsuite tests="7" failures="0" errors="0" skipped="0"/></testsuites>'
    )
    rows = [
        {"task": "train", "batch": 8, "seconds": 0.4},
        {"task": "synth", "batch": 8, "seconds": 0.01},
        {"task": "infer", "batch": 1, "seconds": 0.2},
        {"task": "infer", "batch": 32, "seconds": 0.03},
    ]
    (tmp_path / "bench_bf16.json").write_text(json.dumps({"rows": rows}))
    history = {"results": [{"losses": {"total": 1.9}}, {"losses": {"total": 0.6}}]}
    (tmp_path / "training_history.json").write_text(json.dumps(history))
    assert summarise(tmp_path)["fast"] is None  # step 5 wrote nothing
    fast = {"image_auroc": 0.91, "pixel_auroc": 0.95, "aupro": 0.88, "f1_max": 0.9}
    (tmp_path / "fast_metrics.json").write_text(json.dumps(fast))
    summary = summarise(tmp_path)
    assert summary["fast"] == {"image_auroc": 0.91, "pixel_auroc": 0.95, "aupro": 0.88}
    assert summary["gpu"] == "2.14.1 NVIDIA H200"
    assert summary["steps"]["bench_compile"] == {"ok": False, "seconds": 90}
    assert summary["cuda_tests"] == {"tests": 7, "failures": 0, "errors": 0, "skipped": 0}
    bench = summary["benchmarks"]["bench_bf16"]
    assert bench["images_per_s"] == pytest.approx(20.0)
    assert bench["synthesis_share"] == pytest.approx(0.025)
    assert summary["benchmarks"]["bench_compile"] is None
    assert summary["goals"] == {
        "inference_at_most_0.05_s_per_image": True,
        "synthesis_at_most_5_percent_of_a_step": True,
        "training_loss_falls": True,
    }
    assert "| bench_compile | FAILED | 90 |" in to_markdown(summary)
    assert "conf/fast: {'image_auroc': 0.91" in to_markdown(summary)
