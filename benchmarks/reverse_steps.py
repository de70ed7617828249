"""Accuracy and cost of fewer network calls (issue "the cost of an image"): one trained model, its
category's whole test set, the reverse process with k of the T−2 steps (``inference.num_steps``)
and with early exit (``inference.early_exit``), each scored as the evaluation scores it.

    .venv/bin/python benchmarks/reverse_steps.py \
        --bundle data/06_models/visa/fryum/full15/model_bundle.pt \
        --data-root ../shared/data/visa_fryum --category fryum --json benchmarks/reverse_steps.json

Every setting sees the same images, masks (area resize, the default protocol) and fusion; the
seconds are the reverse process's wall time per image at the given batch size on this machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from transfusion_ad.core.bundle import load_bundle
from transfusion_ad.core.detector import Scoring, TransFusionDetector
from transfusion_ad.core.device import prepare_cpu
from transfusion_ad.core.metrics import aupro, image_auroc, pixel_auroc
from transfusion_ad.core.resize import resize_masks
from transfusion_ad.data import index_category, load_images, load_mask

CALLS = (18, 12, 9, 6, 4, 3)
EARLY_EXITS = (1, 2, 3)


def _latest(path: Path) -> Path:
    """A versioned dataset folder (``model_bundle.pt/<version>/model_bundle.pt``) or a file."""
    if path.is_dir():
        return max(path.iterdir()) / path.name
    return path


def _test_set(root: Path, category: str, size: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """(uint8 images (N, 3, S, S), labels (N,), masks (N, S, S) bool) of the category's test set."""
    manifest = index_category(root, category)
    test = manifest[manifest["split"] == "test"].reset_index(drop=True)
    images = load_images(test["image_path"].tolist(), size).images
    empty = np.zeros((size, size), bool)
    masks = [
        load_mask(path) if isinstance(path, str) and path else empty for path in test["mask_path"]
    ]
    return images, test["label"].to_numpy(), resize_masks(masks, (size, size))


def _measure(
    bundle: dict, scoring: Scoring, images: torch.Tensor, labels, masks, batch: int
) -> dict:
    detector = TransFusionDetector.load(bundle, "cpu", scoring=scoring)
    start = time.perf_counter()
    scored = detector.score_prepared(images, batch_size=batch)
    seconds = (time.perf_counter() - start) / len(images)
    maps = scored["maps"].numpy()
    return {
        "num_steps": scoring.reverse_steps or 18,
        "early_exit": scoring.early_exit,
        "image_auroc": image_auroc(scored["scores"].numpy(), labels),
        "pixel_auroc": pixel_auroc(maps, masks),
        "aupro": aupro(maps, masks),
        "seconds_per_image": seconds,
    }


def plot(rows: list[dict], path: Path) -> None:
    """The three metrics and the seconds per image against the network calls (stride rows)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    strided = sorted((r for r in rows if r["early_exit"] is None), key=lambda r: r["num_steps"])
    calls = [r["num_steps"] for r in strided]
    figure, (quality, cost) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key, label in (("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC")):
        quality.plot(calls, [r[key] for r in strided], marker="o", label=label)
    quality.plot(calls, [r["aupro"] for r in strided], marker="o", label="AUPRO@0.3")
    quality.set(xlabel="network calls per image (k)", ylabel="metric", xticks=calls)
    quality.legend()
    cost.plot(calls, [r["seconds_per_image"] for r in strided], marker="o", color="black")
    cost.set(xlabel="network calls per image (k)", ylabel="s per image", xticks=calls)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="model_bundle.pt (or its versioned folder)")
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--category")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--json", type=Path, help="write the rows to this JSON file")
    parser.add_argument("--figure", type=Path, help="draw the curve to this PNG")
    parser.add_argument("--replot", type=Path, help="only draw --figure from this JSON's rows")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(args.replot.read_text())["rows"], args.figure)
        return
    if not (args.bundle and args.data_root and args.category):
        parser.error("--bundle, --data-root and --category are needed to measure")
    prepare_cpu()
    bundle = load_bundle(_latest(args.bundle))
    base = Scoring.from_dict(bundle["thresholds"]["scoring"])
    images, labels, masks = _test_set(args.data_root, args.category, bundle["recipe"]["image_size"])
    print(
        f"{len(images)} test images, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    settings = [dataclasses.replace(base, reverse_steps=k, early_exit=None) for k in CALLS]
    settings += [dataclasses.replace(base, reverse_steps=None, early_exit=n) for n in EARLY_EXITS]
    rows = []
    for scoring in settings:
        rows.append(_measure(bundle, scoring, images, labels, masks, args.batch))
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"batch": args.batch, "rows": rows}, indent=1) + "\n")
    if args.figure:
        plot(rows, args.figure)


if __name__ == "__main__":
    main()
