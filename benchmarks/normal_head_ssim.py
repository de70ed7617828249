"""Why the signed-range SSIM turns the normal-appearance head's colours: the issue-14 probe.

Trains the small recipe's network for a few steps on shipped sample images with the loss on n̂
only (x_t = x0, no anomaly, M_a = 0) and reports, per channel, the correlation of n̂ with x0 and
how the two SSIM factors behave: the luminance term l = (2 μp μt + c1) / (μp² + μt² + c1) and the
contrast-structure term cs = (2 σpt + c2) / (σp² + σt² + c2), whose product is SSIM.

    .venv/bin/python benchmarks/normal_head_ssim.py --loss l1+ssim --range signed
    .venv/bin/python benchmarks/normal_head_ssim.py --loss l1+ssim --range unit

Prints one JSON object per probe point (step, correlations, SSIM factor statistics).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from transfusion_ad.conf_recipes import conf_recipe
from transfusion_ad.core.losses import SSIM_RANGES, normal_appearance_loss, ssim_factors
from transfusion_ad.core.recipes import model_from_recipe
from transfusion_ad.data.images import load_image

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data/01_raw/sample/fryum/train/good"
SMALL_RECIPE = conf_recipe(ROOT, "quick")  # the small CPU recipe of conf/quick


def load_images(count: int, size: int) -> Tensor:
    """The first ``count`` sample training images in [-1, 1]: (count, 3, size, size)."""
    paths = sorted(SAMPLE.iterdir())[:count]
    arrays = np.stack([load_image(path, size) for path in paths])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def channel_correlation(pred: Tensor, target: Tensor) -> list[float]:
    """Pearson correlation of pred and target over all pixels of each channel: [R, G, B]."""
    p = pred.transpose(0, 1).reshape(3, -1)
    t = target.transpose(0, 1).reshape(3, -1)
    p, t = p - p.mean(1, keepdim=True), t - t.mean(1, keepdim=True)
    return ((p * t).sum(1) / (p.norm(dim=1) * t.norm(dim=1))).tolist()


def factor_summary(pred: Tensor, target: Tensor, ssim_range: str) -> dict[str, list[float]]:
    """Per channel: mean l, mean cs, share of windows with l < 0, and the share of those
    windows where cs < 0 too (the two negatives whose product SSIM rewards)."""
    luminance, structure = ssim_factors(pred, target, ssim_range)
    negative_l = luminance < 0
    both = negative_l & (structure < 0)
    per_channel = (0, 2, 3)
    return {
        "l_mean": luminance.mean(per_channel).tolist(),
        "cs_mean": structure.mean(per_channel).tolist(),
        "share_l_negative": negative_l.float().mean(per_channel).tolist(),
        "share_l_and_cs_negative": both.float().mean(per_channel).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", choices=("l1", "ssim", "l1+ssim"), default="l1+ssim")
    parser.add_argument("--range", choices=SSIM_RANGES, default="signed", dest="ssim_range")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=20, help="probe every N steps")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    images = load_images(args.images, SMALL_RECIPE["image_size"])
    network = model_from_recipe(SMALL_RECIPE)
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-4, weight_decay=0.01)
    ssim_weight = 0.0 if args.loss == "l1" else 1.0
    l1_weight = 0.0 if args.loss == "ssim" else 1.0
    data = torch.Generator().manual_seed(args.seed)

    def probe(step: int) -> None:
        with torch.no_grad():
            t = torch.full((images.shape[0],), 10, dtype=torch.int64)
            _, _, normal_hat = network(torch.cat([images, torch.zeros_like(images[:, :1])], 1), t)
        row = {"step": step, "corr_rgb": channel_correlation(normal_hat, images)}
        row.update(factor_summary(normal_hat, images, args.ssim_range))
        print(json.dumps({k: np.round(v, 3).tolist() for k, v in row.items()}), flush=True)

    for step in range(args.steps):
        if step % args.every == 0:
            probe(step)
        pick = torch.randperm(images.shape[0], generator=data)[: args.batch]
        x0 = images[pick]
        t = torch.randint(1, SMALL_RECIPE["num_steps"], (args.batch,), generator=data)
        _, _, normal_hat = network(torch.cat([x0, torch.zeros_like(x0[:, :1])], 1), t)
        loss = normal_appearance_loss(
            normal_hat, x0, ssim_weight=ssim_weight, l1_weight=l1_weight, ssim_range=args.ssim_range
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    probe(args.steps)
    print(json.dumps({"final_l1": round(F.l1_loss(normal_hat, x0).item(), 4)}))


if __name__ == "__main__":
    main()
