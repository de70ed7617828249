"""What limits image AUROC at small budgets (issue "accuracy per compute", item 5), and the box
filter's size at 64 px: one trained model, its category's whole test set, the reverse process
run once (the paper's 18 calls, fp32), then every fusion box size and image score on the same
soft masks and reconstructions.

    .venv/bin/python benchmarks/image_score.py \\
        --bundle data/06_models/visa/fryum/search/<trial>-<digest>/seed0/model_bundle.pt \\
        --data-root ../shared/data/visa_fryum --category fryum --json benchmarks/image_score.json

Scores: ``max`` is the paper's (the maximum of the fused map); ``top<k>`` the mean of the k
largest values of the fused map, which is less sensitive to one bright pixel on a good image.
The fused map and the pixel metrics depend only on the box size.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness import cpu_extensions  # noqa: E402
from benchmarks.reverse_steps import _latest, _test_set  # noqa: E402
from transfusion_ad.core.bundle import load_bundle  # noqa: E402
from transfusion_ad.core.detector import TransFusionDetector  # noqa: E402
from transfusion_ad.core.device import prepare_cpu  # noqa: E402
from transfusion_ad.core.fusion import fuse_masks, reconstruction_error  # noqa: E402
from transfusion_ad.core.identity import model_binding  # noqa: E402
from transfusion_ad.core.metrics import aupro, image_auroc, pixel_auroc  # noqa: E402
from transfusion_ad.data import to_model_range  # noqa: E402

BOX_SIZES = (3, 5, 7, 9)
TOP_K = (1, 10, 50, 200)  # top1 is the paper's max


def top_k_mean(maps: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of the k largest values of each map: (N, H, W) -> (N,); k = 1 is the maximum."""
    return maps.flatten(1).topk(k, dim=1).values.mean(dim=1)


def study(bundle_path: Path, data_root: Path, category: str, batch: int) -> dict:
    """Every (box size, score) on one pass of the reverse process over the test set."""
    bundle = load_bundle(bundle_path)
    detector = TransFusionDetector.load(bundle, "cpu", "fp32")
    images, labels, masks = _test_set(data_root, category, detector.image_size)
    scored = detector.score_prepared(images, batch_size=batch)
    error = reconstruction_error(to_model_range(images), scored["reconstruction"])
    weight = detector.scoring.fusion_weight
    rows = []
    for box in BOX_SIZES:
        fused = fuse_masks(scored["mask"], error, weight=weight, kernel_size=box)[:, 0]
        maps = fused.numpy()
        row = {
            "box_size": box,
            "pixel_auroc": pixel_auroc(maps, masks),
            "aupro": aupro(maps, masks),
        }
        for k in TOP_K:
            name = "max" if k == 1 else f"top{k}"
            row[f"image_auroc_{name}"] = image_auroc(top_k_mean(fused, k).numpy(), labels)
        rows.append(row)
    return {
        "model": model_binding(bundle),
        "trained_box_size": detector.scoring.box_size,
        "test_images": int(len(labels)),
        "cpu_extensions": cpu_extensions(),
        "rows": rows,
    }


def markdown(result: dict) -> str:
    """The table of benchmarks/recipe_search.md: one row per box size."""
    names = ["max" if k == 1 else f"top{k}" for k in TOP_K]
    header = "| box | pixel AUROC | AUPRO | " + " | ".join(f"image AUROC {n}" for n in names)
    lines = [header + " |", "|---" * (3 + len(names)) + "|"]
    for row in result["rows"]:
        values = " | ".join(f"{row[f'image_auroc_{n}']:.3f}" for n in names)
        lines.append(
            f"| {row['box_size']} | {row['pixel_auroc']:.3f} | {row['aupro']:.3f} | {values} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--category", required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    prepare_cpu()
    result = study(_latest(args.bundle), args.data_root, args.category, args.batch)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
