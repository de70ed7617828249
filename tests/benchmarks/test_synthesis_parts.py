"""The synthesis breakdown benchmark runs every part on both paths (timings are not tested)."""

from __future__ import annotations

import math
from collections import Counter

from benchmarks.bench_synthesis_parts import parts, side_by_side
from transfusion_ad.core.augment import OPERATIONS


def test_every_part_runs_on_both_paths_and_is_timed() -> None:
    measured = parts(size=32)
    names = [name for name, _, _ in measured]
    assert all(any(name.startswith(f"{operation},") for name in names) for operation in OPERATIONS)
    assert "whole synthesis, batch of 8" in names
    calls: Counter[tuple[str, str]] = Counter()

    def counted(path: str, name: str, call):
        def run() -> object:
            calls[path, name] += 1
            return call()

        return run

    for name, batched, naive in measured:
        fast, slow = side_by_side(
            counted("batched", name, batched), counted("naive", name, naive), warmup=1, repeats=2
        )
        assert math.isfinite(fast) and math.isfinite(slow)
    # Each path of each part ran once to warm up and twice timed; no part was skipped.
    assert set(calls.values()) == {3} and len(calls) == 2 * len(measured)
