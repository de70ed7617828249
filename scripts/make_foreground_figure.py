"""Draw docs/foreground_fryum.png: eight VisA fryum test images beside their estimated foreground.

Each pair shows the image (ground-truth defect outlined in red) and the dilated foreground mask
that ``foreground_masks(mode="estimate")`` gives at the training size, with the same defect
outline, so one can see that synthetic anomalies would land on the object and that the real
defects lie inside the mask.

Usage: python scripts/make_foreground_figure.py [--data DIR] [--out PNG] [--size 256]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from transfusion_ad.core.foreground import foreground_masks  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NUM_IMAGES = 8


def _outline(image: np.ndarray, defect: np.ndarray) -> np.ndarray:
    """Copy of an RGB uint8 image with the defect mask's contour drawn in red."""
    contours, _ = cv2.findContours(
        defect.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    return cv2.drawContours(image.copy(), contours, -1, (255, 0, 0), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/visa_fryum/fryum")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/foreground_fryum.png")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()

    files = sorted((args.data / "test/bad").glob("*.JPG"))
    if not files:
        raise SystemExit(f"no test/bad/*.JPG images under {args.data}; pass --data")
    chosen = [files[i] for i in np.linspace(0, len(files) - 1, NUM_IMAGES).round().astype(int)]
    images = [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path in chosen]
    masks = foreground_masks(images, mode="estimate", size=args.size)

    fig, axes = plt.subplots(4, 4, figsize=(12, 9))
    for k, (path, image, mask) in enumerate(zip(chosen, images, masks, strict=True)):
        small = cv2.resize(image, (args.size, args.size), interpolation=cv2.INTER_AREA)
        truth = cv2.imread(str(args.data / "ground_truth/bad" / f"{path.stem}_mask.png"), 0)
        defect = cv2.resize(
            (truth > 0).astype(np.float32), (args.size, args.size), interpolation=cv2.INTER_AREA
        )
        defect = defect > 0
        inside = (defect & mask).sum() / max(defect.sum(), 1)
        shown_mask = np.repeat(mask[:, :, None].astype(np.uint8) * 255, 3, axis=2)
        left, right = axes[k // 2, 2 * (k % 2)], axes[k // 2, 2 * (k % 2) + 1]
        left.imshow(_outline(small, defect))
        left.set_title(f"{path.stem}.JPG", fontsize=9)
        right.imshow(_outline(shown_mask, defect))
        right.set_title(f"foreground {mask.mean():.0%}, defect inside {inside:.0%}", fontsize=9)
    for axis in axes.flat:
        axis.axis("off")
    fig.suptitle(
        f"VisA fryum: estimated foreground (dilated 5×5, {args.size}×{args.size}); "
        "red = ground-truth defect",
        fontsize=11,
    )
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
