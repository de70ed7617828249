"""The authors' code as the anchor of the speed ratios: planned beside the project's paths when
a checkout is given, reported as its own table, refused clearly when the folder is not one."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from benchmarks import authors_path
from benchmarks.run import _plan
from benchmarks.tables import authors_table
from benchmarks.workloads import RECIPES


def _args(**overrides) -> argparse.Namespace:
    values = {
        "quick": True,
        "recipes": "mid",
        "device": "cpu",
        "channels_last": False,
        "bf16": False,
        "compile": False,
        "num_steps": None,
        "nchw": False,
        "no_recompute": False,
        "authors_repo": None,
        "infer_batches": [8],
        "paper_inference": False,
        "tasks": "train,infer",
        "paths": "optimised",
    }
    values.update(overrides)
    return argparse.Namespace(**values)


def _paths(plan: list[list[dict]]) -> list[tuple[str, str, int]]:
    return [(spec["task"], spec["path"], spec["batch"]) for specs in plan for spec in specs]


def test_a_checkout_adds_the_authors_training_step_and_one_image_at_a_time(tmp_path: Path):
    assert _paths(_plan(_args())) == [("train", "optimised", 8), ("infer", "optimised", 8)]
    plan = _plan(_args(authors_repo=tmp_path, num_steps=3))
    assert _paths(plan) == [
        ("train", "optimised", 8),
        ("train", "authors", 8),
        ("infer", "optimised", 8),
        ("infer", "authors", 1),
    ]
    assert {spec["authors_repo"] for specs in plan for spec in specs} == {str(tmp_path)}
    assert {spec["num_steps"] for specs in plan for spec in specs} == {3}


def test_the_table_gives_authors_over_optimised_per_measure() -> None:
    def record(task: str, path: str, batch: int, seconds: float) -> dict:
        return {"task": task, "recipe": "mid", "path": path, "batch": batch, "seconds": seconds}

    rows = [
        record("train", "optimised", 8, 10.0),
        record("train", "authors", 8, 15.0),
        record("infer", "optimised", 8, 2.0),
        record("infer", "authors", 1, 8.0),
    ]
    lines = authors_table(rows).splitlines()
    assert lines[2] == "| mid | s / step (batch 8) | 10 | 15 | 1.50× |"
    assert lines[3] == "| mid | s / image, optimised batch 8 vs authors batch 1 | 2 | 8 | 4.00× |"
    assert authors_table(rows[:1] + rows[2:3]) == ""


def test_a_folder_that_is_not_their_checkout_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"--authors-repo {tmp_path} is not a checkout"):
        authors_path.build_network(RECIPES["smoke"], tmp_path, [])
