"""The synthesis breakdown benchmark runs every part on both paths (timings are not tested)."""

from __future__ import annotations

from benchmarks.bench_synthesis_parts import parts, side_by_side
from transfusion_ad.core.augment import OPERATIONS


def test_every_part_runs_on_both_paths_and_is_timed() -> None:
    measured = parts(size=32)
    names = [name for name, _, _ in measured]
    assert all(any(name.startswith(f"{operation},") for name in names) for operation in OPERATIONS)
    assert "whole synthesis, batch of 8" in names
    for _, batched, naive in measured:
        fast, slow = side_by_side(batched, naive, warmup=0, repeats=1)
        assert fast > 0 and slow > 0
