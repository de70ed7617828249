"""Accuracy and cost of fewer network calls (issue "the cost of an image"): one trained model, its
category's whole test set, the reverse process with k of the T−2 steps (``inference.num_steps``)
and with early exit (``inference.early_exit``), each scored as the evaluation scores it.

    .venv/bin/python benchmarks/reverse_steps.py \
        --bundle data/06_models/visa/fryum/full15/model_bundle.pt \
        --data-root ../shared/data/visa_fryum --category fryum --json benchmarks/reverse_steps.json

Every setting sees the same images, masks (area resize, the default protocol) and fusion; the
seconds are the wall time per image of scoring the whole test set at the given batch size on
this machine, after one untimed batch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness import cpu_extensions  # noqa: E402
from transfusion_ad.conf_recipes import project_parameters  # noqa: E402
from transfusion_ad.core.bundle import load_bundle  # noqa: E402
from transfusion_ad.core.detector import Scoring, TransFusionDetector  # noqa: E402
from transfusion_ad.core.device import prepare_cpu  # noqa: E402
from transfusion_ad.core.identity import model_binding  # noqa: E402
from transfusion_ad.core.metrics import aupro, image_auroc, pixel_auroc  # noqa: E402
from transfusion_ad.data import index_category  # noqa: E402
from transfusion_ad.pipelines.data_ingestion.nodes import load_test_set, split_holdout  # noqa: E402

# k network calls of the strided process, and "eN" for the full process with early exit N.
SETTINGS = "18,12,9,6,4,3,e1,e2,e3"


def _latest(path: Path) -> Path:
    """A versioned dataset folder (``model_bundle.pt/<version>/model_bundle.pt``) or a file."""
    if path.is_dir():
        return max(path.iterdir()) / path.name
    return path


def _test_set(root: Path, category: str, size: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """(uint8 images (N, 3, S, S), labels (N,), masks (N, S, S) bool) of the category's test set,
    read as the data_ingestion pipeline reads it (default protocol, conf/base's data settings)."""
    data = project_parameters(ROOT)["data"]
    manifest = split_holdout(index_category(root, category), data, seed=0)
    test = load_test_set(manifest, size, data)
    return test["images"], test["labels"].numpy(), test["masks"].numpy()


def _scorings(base: Scoring, settings: str) -> list[Scoring]:
    """One Scoring per item of ``settings`` ("18,6,e2": 18 and 6 calls, early exit 2)."""
    chosen = []
    for item in settings.split(","):
        if item.startswith("e"):
            chosen.append(dataclasses.replace(base, reverse_steps=None, early_exit=int(item[1:])))
        else:
            chosen.append(dataclasses.replace(base, reverse_steps=int(item), early_exit=None))
    return chosen


def _measure(
    bundle: dict,
    scoring: Scoring,
    precision: str,
    images: torch.Tensor,
    labels: np.ndarray,
    masks: np.ndarray,
    batch: int,
) -> dict:
    detector = TransFusionDetector.load(bundle, "cpu", precision, scoring=scoring)
    detector.score_prepared(images[:batch], batch_size=batch)  # warm-up, not timed
    start = time.perf_counter()
    scored = detector.score_prepared(images, batch_size=batch)
    seconds = (time.perf_counter() - start) / len(images)
    maps = scored["maps"].numpy()
    deviation = {}
    if precision != "fp32":  # how far the maps and scores move from fp32's
        reference = TransFusionDetector.load(bundle, "cpu", "fp32", scoring=scoring)
        exact = reference.score_prepared(images, batch_size=batch)
        deviation = {
            "max_score_deviation": float((scored["scores"] - exact["scores"]).abs().max()),
            "max_map_deviation": float((scored["maps"] - exact["maps"]).abs().max()),
            "mean_map_deviation": float((scored["maps"] - exact["maps"]).abs().mean()),
        }
    return {
        "num_steps": scoring.reverse_steps or 18,
        "early_exit": scoring.early_exit,
        "precision": precision,
        "image_auroc": image_auroc(scored["scores"].numpy(), labels),
        "pixel_auroc": pixel_auroc(maps, masks),
        "aupro": aupro(maps, masks),
        "seconds_per_image": seconds,
        **deviation,
    }


def plot(rows: list[dict], path: Path) -> None:
    """The three metrics and the seconds per image against the network calls (stride rows)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    strided = sorted(
        (r for r in rows if r["early_exit"] is None and r.get("precision", "fp32") == "fp32"),
        key=lambda r: r["num_steps"],
    )
    calls = [r["num_steps"] for r in strided]
    figure, (quality, cost) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key, label in (("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC")):
        quality.plot(calls, [r[key] for r in strided], marker="o", label=label)
    quality.plot(calls, [r["aupro"] for r in strided], marker="o", label="AUPRO@0.3")
    quality.set(xlabel="network calls per image (k)", ylabel="metric", xticks=calls)
    quality.legend(loc="center right")
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
    parser.add_argument("--settings", default=SETTINGS, help=f"default {SETTINGS}")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
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
        f"{len(images)} test images, CPU extensions {cpu_extensions()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    rows = []
    for scoring in _scorings(base, args.settings):
        rows.append(_measure(bundle, scoring, args.precision, images, labels, masks, args.batch))
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        record = {
            "batch": args.batch,
            "cpu_extensions": cpu_extensions(),
            "model": model_binding(bundle),
            "rows": rows,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    if args.figure:
        plot(rows, args.figure)


if __name__ == "__main__":
    main()
