"""``transfusion-ad export``: the network of a model bundle as ONNX (or TorchScript), with a JSON
of everything around it that a runtime must reproduce: preprocessing, the reverse loop's
constants, fusion and thresholds.

The network is one call ``(x (B, 4, S, S) float32, t (B,) int64) -> (mask logits (B, 1, S, S),
anomaly ε̂ (B, 3, S, S), normal n̂ (B, 3, S, S))``. The reverse process around it is T−2 calls
(serving/onnx_runner.py is the reference loop in NumPy + onnxruntime).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from transfusion_ad.core.bundle import build_network, load_bundle
from transfusion_ad.core.sampler import visited_steps
from transfusion_ad.core.schedule import TransparencySchedule

ONNX_OPSET = 17
NETWORK_FILES = {"onnx": "network.onnx", "torchscript": "network.pt"}
SPEC_FILE = "transfusion.json"
FORMATS = tuple(NETWORK_FILES)


def export_spec(bundle: dict[str, Any], network_file: str) -> dict[str, Any]:
    """The runtime's contract: what goes in, the loop, fusion and the decision."""
    recipe, calibration = bundle["recipe"], bundle["thresholds"] or {}
    steps = recipe["num_steps"]
    scoring = calibration.get("scoring")
    if scoring is None:
        raise ValueError(
            "The bundle was never calibrated (no thresholds, no scoring): export the "
            "model_bundle that the evaluation wrote."
        )
    divisor = steps - 1 if scoring["mask_divisor"] == "paper" else steps - 2
    if scoring.get("early_exit") is not None:
        raise ValueError(
            "The bundle was calibrated with inference.early_exit, which the exported loop does "
            "not do: calibrate it with early_exit null (kedro run --pipelines=evaluation), then "
            "export."
        )
    return {
        "format_version": 1,
        "network": network_file,
        "identity": bundle["identity"],
        "recipe": recipe,
        "inputs": {
            "image_size": recipe["image_size"],
            "resize": "PIL bilinear (antialiased), RGB uint8, to image_size x image_size",
            "normalise": "x = pixel / 127.5 - 1, channels RGB, layout (B, 3, S, S)",
            "network_input": "concat(x_t, mask_in) on channels: (B, 4, S, S); t: (B,) int64",
        },
        "reverse_loop": {
            "steps": visited_steps(steps, scoring.get("reverse_steps")),
            "betas": TransparencySchedule(steps).betas.tolist(),
            "update": "x = x - (dbeta_t / beta_t) * M * anomaly + dbeta_t * M * normal, "
            "dbeta_t = beta_t - beta_next, next = the following step (0 after the last), "
            "M = sigmoid(logits) > 0.5",
            "mask_in": "zeros at the first step, then M of the previous step",
            "mask": "sum of sigmoid(logits) * (t - next) over the steps / mask_divisor",
            "mask_divisor": divisor,
        },
        "fusion": {
            "weight": scoring["fusion_weight"],
            "box_size": scoring["box_size"],
            "box": "mean over a box_size x box_size window, zero padding, same size",
            "error": "mean over RGB of (clip(x/2+0.5) - clip(reconstruction/2+0.5))^2",
            "map": "weight * box(mask) + (1 - weight) * box(error)",
            "score": "maximum of the map",
        },
        "thresholds": {key: calibration.get(key) for key in ("image", "pixel")},
    }


def export_model(bundle_path: str | Path, out: str | Path, fmt: str = "onnx") -> Path:
    """Write the network and transfusion.json into ``out``; returns the network's path."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}.")
    bundle = load_bundle(bundle_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = export_spec(bundle, NETWORK_FILES[fmt])
    network = build_network(bundle, "cpu").to(memory_format=torch.contiguous_format)
    size = bundle["recipe"]["image_size"]
    example = (torch.zeros(2, 4, size, size), torch.tensor([2, 1]))
    target = out / NETWORK_FILES[fmt]
    with torch.no_grad():
        if fmt == "torchscript":
            torch.jit.trace(network, example).save(str(target))
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation
                torch.onnx.export(
                    network,
                    example,
                    str(target),
                    input_names=["x", "t"],
                    output_names=["mask_logits", "anomaly", "normal"],
                    dynamic_axes={
                        name: {0: "batch"}
                        for name in ("x", "t", "mask_logits", "anomaly", "normal")
                    },
                    opset_version=ONNX_OPSET,
                    dynamo=False,
                )
    spec["opset"] = ONNX_OPSET if fmt == "onnx" else None
    (out / SPEC_FILE).write_text(json.dumps(spec, indent=1) + "\n")
    return target
