"""The FLOP model of the speed benchmark: work per forward pass and what the device can do.

``forward_flops`` counts the network's FLOPs on the meta device (nothing is computed), so the
tables can turn seconds into GFLOP/s; ``measured_matmul_gflops`` and ``NOMINAL_PEAK_GFLOPS``
are the ceilings those rates are shown against.
"""

from __future__ import annotations

from typing import Any

import torch

from benchmarks.harness import timed
from transfusion_ad.core.unet import TransFusionUNet

NOMINAL_PEAK_GFLOPS = 190.0


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
    times = timed(lambda: a @ b, device, warmup=2, repeats=repeats)
    return 2 * size**3 / min(times) / 1e9
