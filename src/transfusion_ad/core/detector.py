"""TransFusionDetector: the one path from a model bundle to image scores and anomaly maps.

bundle -> network -> batched reverse process (core.sampler) -> fusion (core.fusion) -> the
image score (the fused map's maximum at the model's resolution), the map at each input's own
size and, with calibrated thresholds, the verdict and the binary mask. Evaluation, predict, the
figures, serving and the benchmarks all call it, so an image gets one score whichever way it
is scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from transfusion_ad.core.bundle import build_network, load_bundle
from transfusion_ad.core.device import resolve_device
from transfusion_ad.core.fusion import fuse_masks, image_scores, reconstruction_error
from transfusion_ad.core.protocol import warn_if_test_calibrated
from transfusion_ad.core.resize import upsample_map
from transfusion_ad.core.sampler import MASK_DIVISORS, SamplerOutput, StepRecord, reverse_process
from transfusion_ad.core.schedule import TransparencySchedule
from transfusion_ad.data.images import load_image, to_rgb_array
from transfusion_ad.data.loading import to_model_range

PRECISIONS = ("fp32", "bf16")
ImageInput = str | Path | np.ndarray | Image.Image


@dataclass(frozen=True)
class Scoring:
    """How soft masks and reconstructions become a map (spec §6, §7): the mask divisor of the
    reverse process, the fusion weight w and the box-filter side k, and the reverse process's
    network calls: ``reverse_steps`` (None: all T−2, the paper) and ``early_exit`` (None: off).
    Thresholds are calibrated with one Scoring and hold only with it, so calibration records it
    beside them."""

    mask_divisor: str
    fusion_weight: float
    box_size: int
    reverse_steps: int | None = None
    early_exit: int | None = None

    def __post_init__(self) -> None:
        if self.mask_divisor not in MASK_DIVISORS:
            raise ValueError(
                f"mask_divisor must be one of {MASK_DIVISORS}, got {self.mask_divisor!r}."
            )

    @classmethod
    def from_params(cls, inference: Mapping[str, Any], evaluation: Mapping[str, Any]) -> Scoring:
        """From the ``inference`` and ``evaluation`` parameter groups."""
        return cls(
            mask_divisor=inference["mask_divisor"],
            fusion_weight=float(evaluation["fusion_weight"]),
            box_size=int(evaluation["box_size"]),
            reverse_steps=inference.get("num_steps"),
            early_exit=inference.get("early_exit"),
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Scoring:
        """From ``to_dict``'s output; one recorded before the step settings means all steps."""
        fixed = {key: values[key] for key in ("mask_divisor", "fusion_weight", "box_size")}
        return cls(**fixed, **{key: values.get(key) for key in ("reverse_steps", "early_exit")})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fuse(self, images: Tensor, mask: Tensor, reconstruction: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 images (B, 3, S, S), averaged soft masks (B, 1, S, S) and reconstructions
        (B, 3, S, S) in [-1, 1] -> (fused maps (B, S, S), image scores (B,)), float32."""
        error = reconstruction_error(to_model_range(images), reconstruction)
        fused = fuse_masks(mask, error, weight=self.fusion_weight, kernel_size=self.box_size)
        return fused[:, 0].float(), image_scores(fused).float()


@dataclass
class DetectorOutput:
    """What the detector says of N images.

    scores (N,) float32: the fused map's maximum at the model's resolution; maps: N float32
    maps, each (H_i, W_i) at its input's own size; model_maps (N, S, S): the same at the
    model's resolution; anomalous (N,) bool and masks (N bool (H_i, W_i)) at the thresholds
    (None without thresholds); reconstruction (N, 3, S, S) in [-1, 1] and the per-step records
    of the reverse process when asked for.
    """

    scores: np.ndarray
    maps: list[np.ndarray]
    model_maps: Tensor
    anomalous: np.ndarray | None = None
    masks: list[np.ndarray] | None = None
    reconstruction: Tensor | None = None
    steps: list[StepRecord] | None = None


class TransFusionDetector:
    """A trained network with its schedule, resolution, scoring and (once calibrated)
    thresholds; call it on images of any size.

    ``thresholds`` is {"image": float, "pixel": float, ...} or None; ``precision`` "bf16" runs
    the network under bf16 autocast (maps and scores come back as float32).
    """

    def __init__(
        self,
        network: nn.Module,
        schedule: TransparencySchedule,
        image_size: int,
        scoring: Scoring,
        thresholds: Mapping[str, Any] | None = None,
        precision: str = "fp32",
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
        self.network = network.eval()
        self.schedule = schedule
        self.image_size = int(image_size)
        self.scoring = scoring
        self.thresholds = dict(thresholds) if thresholds is not None else None
        self.precision = precision
        self.device = next(network.parameters()).device

    @classmethod
    def load(
        cls,
        bundle: str | Path | Mapping[str, Any],
        device: str = "auto",
        precision: str = "fp32",
        *,
        scoring: Scoring | None = None,
        thresholds: Mapping[str, Any] | None = None,
    ) -> TransFusionDetector:
        """From a bundle file or payload (core.bundle). The thresholds are the bundle's
        calibration unless given. The scoring is, in this order: ``scoring``, the one the
        thresholds were calibrated with, the bundle's own (an imported model's); a bundle with
        none of them needs ``scoring``. Without thresholds there are no verdicts; the bundle's
        own, when calibrated on test images (the paper protocol), come with a warning."""
        payload = load_bundle(bundle)
        calibration = thresholds if thresholds is not None else payload["thresholds"]
        if thresholds is None:
            where = "this model bundle" if isinstance(bundle, Mapping) else f"'{bundle}'"
            warn_if_test_calibrated(calibration, where)
        recorded = (calibration or {}).get("scoring") or payload["scoring"]
        if scoring is None and recorded is None:
            raise ValueError(
                "This model bundle was never calibrated, so it records no scoring (mask "
                "divisor, fusion weight, box size): pass scoring=Scoring(...), or load the "
                "bundle that the evaluation pipeline wrote (model_bundle)."
            )
        scoring = scoring or Scoring.from_dict(recorded)
        recipe = payload["recipe"]
        return cls(
            build_network(payload, resolve_device(device)),
            TransparencySchedule(recipe["num_steps"]),
            recipe["image_size"],
            scoring,
            thresholds=calibration,
            precision=precision,
        )

    def prepare(
        self, images: Sequence[ImageInput] | Tensor
    ) -> tuple[Tensor, list[tuple[int, int]]]:
        """Images as the evaluation sees them: uint8 (N, 3, S, S), decoded and resized exactly
        as data_ingestion does, and each input's own (height, width)."""
        if isinstance(images, Tensor):
            images = _tensor_images(images)
        arrays, sizes = [], []
        for image in images:
            if isinstance(image, str | Path):
                with Image.open(image) as opened:
                    width, height = opened.size
                arrays.append(load_image(image, self.image_size))
            else:
                picture = image if isinstance(image, Image.Image) else _as_picture(image)
                width, height = picture.size
                arrays.append(to_rgb_array(picture, self.image_size))
            sizes.append((height, width))
        if not arrays:
            raise ValueError("No image to score.")
        stacked = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        return stacked, sizes

    def reverse(self, images: Tensor, return_steps: bool = False) -> SamplerOutput:
        """The reverse process on uint8 images (B, 3, S, S); mask, reconstruction and step
        records come back as float32 on the CPU. Step records show every visited step, so
        early exit is off for them."""
        autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if self.precision == "bf16"
            else nullcontext()
        )
        with autocast:
            output = reverse_process(
                self.network,
                self.schedule,
                to_model_range(images).to(self.device),
                mask_divisor=self.scoring.mask_divisor,
                return_steps=return_steps,
                num_steps=self.scoring.reverse_steps,
                early_exit=None if return_steps else self.scoring.early_exit,
            )
        steps = None
        if output.steps is not None:
            steps = [
                StepRecord(s.t, s.x_t.float(), s.mask.float(), s.anomaly.float(), s.normal.float())
                for s in output.steps
            ]
        return SamplerOutput(
            mask=output.mask.float().cpu(),
            reconstruction=output.reconstruction.float().cpu(),
            steps=steps,
        )

    def score_prepared(
        self, images: Tensor, batch_size: int = 8, return_steps: bool = False
    ) -> dict[str, Any]:
        """uint8 images (N, 3, S, S) -> {"maps": (N, S, S), "scores": (N,), "mask",
        "reconstruction", "steps"}, ``batch_size`` images per network call."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        maps, scores, masks, reconstructions, steps = [], [], [], [], []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            output = self.reverse(chunk, return_steps=return_steps)
            fused, score = self.scoring.fuse(chunk, output.mask, output.reconstruction)
            maps.append(fused)
            scores.append(score)
            masks.append(output.mask)
            reconstructions.append(output.reconstruction)
            if output.steps is not None:
                steps.append(output.steps)
        return {
            "maps": torch.cat(maps),
            "scores": torch.cat(scores),
            "mask": torch.cat(masks),
            "reconstruction": torch.cat(reconstructions),
            "steps": _join_steps(steps) if return_steps else None,
        }

    def __call__(
        self,
        images: Sequence[ImageInput] | Tensor,
        batch_size: int = 8,
        *,
        return_reconstruction: bool = False,
        return_steps: bool = False,
    ) -> DetectorOutput:
        """Score images: file paths, uint8 (H, W, 3) or (H, W) arrays, PIL images, or a
        (N, 3, H, W) uint8 tensor (or float in [0, 1]); any size, sizes may be mixed."""
        prepared, sizes = self.prepare(images)
        result = self.score_prepared(prepared, batch_size, return_steps=return_steps)
        model_maps = result["maps"]
        maps = [upsample_map(m, size) for m, size in zip(model_maps.numpy(), sizes, strict=True)]
        scores = result["scores"].numpy()
        anomalous = masks = None
        if self.thresholds is not None:
            anomalous = scores >= float(self.thresholds["image"])
            masks = [m >= float(self.thresholds["pixel"]) for m in maps]
        return DetectorOutput(
            scores=scores,
            maps=maps,
            model_maps=model_maps,
            anomalous=anomalous,
            masks=masks,
            reconstruction=result["reconstruction"] if return_reconstruction else None,
            steps=result["steps"],
        )


def _as_picture(array: np.ndarray) -> Image.Image:
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(
            "An image array must be uint8 (H, W, 3) or (H, W); got "
            f"{array.dtype} with shape {array.shape}."
        )
    return Image.fromarray(array)


def _tensor_images(images: Tensor) -> list[np.ndarray]:
    """(N, 3, H, W) uint8, or float in [0, 1], -> N uint8 (H, W, 3) arrays."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"Expected images (N, 3, H, W), got shape {tuple(images.shape)}.")
    if images.dtype != torch.uint8:
        if not images.is_floating_point():
            raise ValueError(f"Image tensors must be uint8 or float in [0, 1], not {images.dtype}.")
        images = (images.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return list(images.permute(0, 2, 3, 1).cpu().numpy())


def _join_steps(batches: list[list[StepRecord]]) -> list[StepRecord]:
    """Per-batch step records -> one record per step over all images."""
    return [
        StepRecord(
            records[0].t,
            torch.cat([r.x_t for r in records]),
            torch.cat([r.mask for r in records]),
            torch.cat([r.anomaly for r in records]),
            torch.cat([r.normal for r in records]),
        )
        for records in zip(*batches, strict=True)
    ]
