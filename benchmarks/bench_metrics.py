"""Time and peak memory of the pixel metrics on a category-sized test set.

Maps are seeded, box-filtered noise (like TransFusion's fused masks, spec §7) with disc- and
bar-shaped defects on half of the images, scored a little higher inside the defects. Wall and
process CPU times are the best of --repeats runs; peak memory is measured in a separate run with
tracemalloc (numpy reports its buffers to it): the peak the metric allocates on top of the inputs.

    .venv/bin/python benchmarks/bench_metrics.py [--images 500] [--size 256] [--sklearn]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from transfusion_ad.core.metrics import aupro, compute_all, pixel_ap, pixel_auroc


def make_category(images: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Maps (N, S, S) float32 in about [0, 1] and masks (N, S, S) bool."""
    rng = np.random.default_rng(seed)
    maps = np.empty((images, size, size), dtype=np.float32)
    masks = np.zeros((images, size, size), dtype=bool)
    rows, cols = np.ogrid[:size, :size]
    for index in range(images):
        noise = rng.random((size, size), dtype=np.float32)
        maps[index] = ndimage.uniform_filter(noise, size=7)
        if index % 2:
            for _ in range(rng.integers(1, 4)):
                row, col = rng.integers(size // 8, size - size // 8, 2)
                if rng.random() < 0.5:
                    radius = rng.integers(2, size // 10)
                    masks[index] |= (rows - row) ** 2 + (cols - col) ** 2 < radius**2
                else:
                    masks[index, row : row + 3, col : col + rng.integers(5, size // 4)] = True
            maps[index][masks[index]] += np.float32(rng.uniform(0.02, 0.1))
    return maps, masks


def measure(function: Callable[[], object], repeats: int) -> tuple[float, float, float, object]:
    """(best wall seconds, best process CPU seconds, traced peak MiB, result)."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = function()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    tracemalloc.start()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return wall, cpu, peak / 2**20, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sklearn", action="store_true", help="also time scikit-learn's AUROC/AP")
    args = parser.parse_args()

    maps, masks = make_category(args.images, args.size)
    scores, labels = maps.max(axis=(1, 2)), masks.any(axis=(1, 2))
    print(
        f"{args.images} maps of {args.size}x{args.size} ({maps.size / 1e6:.1f} M pixels, "
        f"{masks.mean():.2%} defect): inputs {maps.nbytes / 2**20:.0f} MiB float32 maps + "
        f"{masks.nbytes / 2**20:.0f} MiB bool masks"
    )
    cases: dict[str, Callable[[], object]] = {
        "aupro (fpr_limit 0.3)": lambda: aupro(maps, masks),
        "pixel_auroc": lambda: pixel_auroc(maps, masks),
        "pixel_ap": lambda: pixel_ap(maps, masks),
        "compute_all (one sort)": lambda: compute_all(scores, labels, maps, masks),
    }
    if args.sklearn:
        from sklearn.metrics import average_precision_score, roc_auc_score

        cases["sklearn roc_auc_score"] = lambda: roc_auc_score(masks.ravel(), maps.ravel())
        cases["sklearn average_precision"] = lambda: average_precision_score(
            masks.ravel(), maps.ravel()
        )
    print(f"| metric | wall s (best of {args.repeats}) | CPU s | peak traced MiB | value |")
    print("|---|---|---|---|---|")
    for name, function in cases.items():
        wall, cpu, peak, value = measure(function, args.repeats)
        shown = f"{value:.6f}" if isinstance(value, float) else "(all)"
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {peak:.0f} | {shown} |")


if __name__ == "__main__":
    main()
