"""The reference loop around an exported network: preprocessing, T−2 onnxruntime calls, the
box-filter fusion and the decision, in NumPy, from transfusion.json alone. What a C++ or edge
runtime must implement is exactly this file (see the README's export section)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from transfusion_ad.core.resize import upsample_map
from transfusion_ad.data.images import load_image, to_rgb_array
from transfusion_ad.serving.onnx_export import SPEC_FILE


@dataclass
class OnnxOutput:
    """scores (N,), maps at each input's own size, model_maps (N, S, S), anomalous (N,) bool
    at the image threshold."""

    scores: np.ndarray
    maps: list[np.ndarray]
    model_maps: np.ndarray
    anomalous: np.ndarray


def _box(maps: np.ndarray, size: int) -> np.ndarray:
    """Zero-padded "same" mean filter of (N, S, S) maps, as core.fusion.box_filter."""
    if size == 1:
        return maps
    pad = size // 2
    padded = np.pad(maps, ((0, 0), (pad, pad), (pad, pad)))
    summed = padded.cumsum(axis=1).cumsum(axis=2)
    summed = np.pad(summed, ((0, 0), (1, 0), (1, 0)))
    height, width = maps.shape[1:]
    window = (
        summed[:, size : size + height, size : size + width]
        - summed[:, :height, size : size + width]
        - summed[:, size : size + height, :width]
        + summed[:, :height, :width]
    )
    return (window / (size * size)).astype(np.float32)


class OnnxDetector:
    """Scores images with network.onnx and transfusion.json; the same interface as
    TransFusionDetector's call (scores, maps), for ``transfusion-ad predict --onnx``."""

    def __init__(self, session: Any, spec: dict[str, Any]) -> None:
        self.session = session
        self.spec = spec
        self.image_size = int(spec["inputs"]["image_size"])
        self.thresholds = dict(spec["thresholds"])
        loop = spec["reverse_loop"]
        self.betas = np.asarray(loop["betas"], dtype=np.float32)
        self.steps = [int(step) for step in loop["steps"]]
        self.divisor = float(loop["mask_divisor"])

    @classmethod
    def load(cls, folder: str | Path) -> OnnxDetector:
        import onnxruntime

        folder = Path(folder)
        spec_path = folder / SPEC_FILE
        if not spec_path.is_file():
            raise FileNotFoundError(
                f"{spec_path} not found: give a folder written by `transfusion-ad export`."
            )
        spec = json.loads(spec_path.read_text())
        session = onnxruntime.InferenceSession(
            str(folder / spec["network"]), providers=["CPUExecutionProvider"]
        )
        return cls(session, spec)

    def reverse(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Images (B, 3, S, S) in [-1, 1] -> (averaged soft mask (B, 1, S, S), reconstruction)."""
        mask_in = np.zeros((len(x), 1, *x.shape[2:]), np.float32)
        mask_sum = np.zeros_like(mask_in)
        for index, step in enumerate(self.steps):
            following = self.steps[index + 1] if index + 1 < len(self.steps) else 0
            t = np.full(len(x), step, np.int64)
            logits, anomaly, normal = self.session.run(
                None, {"x": np.concatenate([x, mask_in], axis=1), "t": t}
            )
            soft = 1.0 / (1.0 + np.exp(-logits))
            binary = (soft > 0.5).astype(np.float32)
            beta = self.betas[step]
            delta = beta - self.betas[following]
            x = x - (delta / beta) * binary * anomaly + delta * binary * normal
            mask_sum = mask_sum + soft * np.float32(step - following)
            mask_in = binary
        return mask_sum / np.float32(self.divisor), x

    def __call__(self, images: Sequence[Any], batch_size: int = 8) -> OnnxOutput:
        """Image paths, uint8 arrays or PIL images of any size."""
        arrays, sizes = [], []
        for image in images:
            if isinstance(image, str | Path):
                with Image.open(image) as opened:
                    sizes.append((opened.height, opened.width))
                arrays.append(load_image(image, self.image_size))
            else:
                picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
                sizes.append((picture.height, picture.width))
                arrays.append(to_rgb_array(picture, self.image_size))
        pixels = np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32)
        fusion = self.spec["fusion"]
        maps = []
        for start in range(0, len(pixels), batch_size):
            x = pixels[start : start + batch_size] / np.float32(127.5) - np.float32(1.0)
            mask, reconstruction = self.reverse(x)
            a = np.clip(x / 2 + 0.5, 0.0, 1.0)
            b = np.clip(reconstruction / 2 + 0.5, 0.0, 1.0)
            error = ((a - b) ** 2).mean(axis=1)
            weight, box = float(fusion["weight"]), int(fusion["box_size"])
            maps.append(weight * _box(mask[:, 0], box) + (1 - weight) * _box(error, box))
        model_maps = np.concatenate(maps).astype(np.float32)
        full = [upsample_map(m, size) for m, size in zip(model_maps, sizes, strict=True)]
        scores = model_maps.reshape(len(model_maps), -1).max(axis=1)
        return OnnxOutput(scores, full, model_maps, scores >= float(self.thresholds["image"]))
