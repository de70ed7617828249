"""Where anomaly synthesis spends its time: each part, batched torch next to per-sample NumPy.

``run.py`` times a whole synthesis batch; this splits it into the parts both paths have, so the
ratio of each part shows what batching buys and where it cannot help: Perlin noise and its
rotation for the four anomalous samples of a batch of 8, each of the ten appearance operations
on one image, three random operations on four images, the tile shuffle, and the whole batch.
The two paths take turns call by call in one process (median of ``--repeats`` after
``--warmup``). The process keeps freed memory in its heap, as the library's CPU trainer does.

    .venv/bin/python benchmarks/bench_synthesis_parts.py [--size 128] [--repeats 200]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.naive import NaiveSynthesizer  # noqa: E402
from benchmarks.naive import ops as naive_ops  # noqa: E402
from benchmarks.naive.geometry import rotate_image  # noqa: E402
from benchmarks.naive.synthesis import rand_perlin_2d, tile_shuffle  # noqa: E402
from benchmarks.workloads import random_images, texture_bank, texture_files  # noqa: E402
from transfusion_ad.core import augment  # noqa: E402
from transfusion_ad.core.device import prepare_cpu  # noqa: E402
from transfusion_ad.core.synthesis import AnomalySynthesizer, _tile_shuffle, perlin_noise  # noqa: E402

ANOMALOUS = 4  # the anomalous half of a batch of 8


def side_by_side(
    batched: Callable[[], object], naive: Callable[[], object], warmup: int, repeats: int
) -> tuple[float, float]:
    """Median seconds of each callable, called in turns."""
    times: tuple[list[float], list[float]] = ([], [])
    for index in range(warmup + repeats):
        for call, kept in zip((batched, naive), times, strict=True):
            start = time.perf_counter()
            call()
            if index >= warmup:
                kept.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def parts(size: int) -> list[tuple[str, Callable[[], object], Callable[[], object]]]:
    """(name, batched torch call, per-sample NumPy call) for every part of one batch."""
    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    x0 = random_images(2 * ANOMALOUS, size, torch.device("cpu"))
    images = ((x0[:ANOMALOUS] + 1.0) * 127.5).round().to(torch.uint8)
    arrays = [image.permute(1, 2, 0).numpy().copy() for image in images]
    noise = perlin_noise(ANOMALOUS, size, size, generator=generator)
    noise_arrays = [plane[0].numpy().astype(np.float64) for plane in noise]
    degrees = torch.rand(ANOMALOUS, generator=generator) * 180.0 - 90.0
    angles = degrees.tolist()

    def naive_perlin() -> None:
        for _ in range(ANOMALOUS):
            res_y, res_x = (2 ** rng.integers(0, 6, 2)).tolist()
            angles = 2 * math.pi * rng.random((res_y + 1, res_x + 1))
            rand_perlin_2d((size, size), (res_y, res_x), angles)

    def naive_operation(name: str) -> Callable[[], object]:
        return lambda: naive_ops.OPERATIONS[name](arrays[0], **naive_ops.draw_parameters(name, rng))

    def batched_operation(name: str) -> Callable[[], object]:
        return lambda: augment.OPERATIONS[name](images[:1], generator)

    foreground = torch.ones(2 * ANOMALOUS, 1, size, size)
    t = torch.randint(1, 20, (2 * ANOMALOUS,), generator=generator)
    synthesizer = AnomalySynthesizer(texture_bank(size, torch.device("cpu")), num_steps=20)
    naive_synthesizer = NaiveSynthesizer(texture_files(), num_steps=20, seed=0)
    return [
        (
            "Perlin noise, 4 maps",
            lambda: perlin_noise(ANOMALOUS, size, size, generator=generator),
            naive_perlin,
        ),
        (
            "noise rotation, 4 maps",
            lambda: augment.rotate(noise, degrees),
            lambda: [rotate_image(plane, d) for plane, d in zip(noise_arrays, angles, strict=True)],
        ),
        *(
            (f"{name}, 1 image", batched_operation(name), naive_operation(name))
            for name in augment.OPERATIONS
        ),
        (
            "3 random operations, 4 images",
            lambda: augment.apply_random_operations(images, 3, generator),
            lambda: [naive_ops.apply_random_operations(array, rng) for array in arrays],
        ),
        (
            "tile shuffle, 4 images",
            lambda: _tile_shuffle(images, 8, generator),
            lambda: [tile_shuffle(array, 8, rng.permutation(64)) for array in arrays],
        ),
        (
            "whole synthesis, batch of 8",
            lambda: synthesizer(x0, foreground, t, generator=generator),
            lambda: naive_synthesizer(x0, foreground, t),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="image side (default 128, mid)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    prepare_cpu()
    print(f"{args.size}², torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| part | batched torch ms | per-sample NumPy ms | ratio |")
    print("|---|---|---|---|")
    for name, batched, naive in parts(args.size):
        fast, slow = side_by_side(batched, naive, args.warmup, args.repeats)
        print(f"| {name} | {fast * 1e3:.3f} | {slow * 1e3:.3f} | {slow / fast:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
