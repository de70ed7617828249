"""Nodes of calibrate: score a folder of good images from the line with the category's model
and set the image threshold for a target false-reject rate, with the bound it rests on."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from transfusion_ad.core.bundle import check_recipe
from transfusion_ad.core.detector import Scoring, TransFusionDetector
from transfusion_ad.core.identity import model_binding
from transfusion_ad.core.thresholds import calibrate_thresholds, calibration_record
from transfusion_ad.data.images import list_image_files

logger = logging.getLogger(__name__)


def score_good_images(
    model_checkpoint: dict[str, Any],
    good_dir: str | None,
    inference: dict[str, Any],
    evaluation: dict[str, Any],
    image_size: int,
    model: dict[str, Any],
    device: str,
) -> dict[str, Any]:
    """{"files", "maps": (N, S, S), "scores": (N,)} of every image under ``good_dir``, scored
    exactly as the evaluation scores (the same decoding, reverse process and fusion)."""
    if not good_dir:
        raise ValueError(
            "No folder of good images: give one with `kedro run --pipelines=calibrate "
            "--params category=<C>,good_dir=path/to/good,false_reject_rate=0.01`."
        )
    check_recipe(model_checkpoint, image_size, model)
    files = list_image_files(good_dir, "good_dir")
    detector = TransFusionDetector.load(
        model_checkpoint,
        device,
        precision=inference["precision"],
        scoring=Scoring.from_params(inference, evaluation),
    )
    batch = inference["batch_size"]
    maps, scores = [], []
    for start in tqdm(range(0, len(files), batch), desc="calibrate", unit="batch"):
        chunk = [Path(good_dir) / name for name in files[start : start + batch]]
        scored = detector.score_prepared(detector.prepare(chunk)[0], batch)
        maps.append(scored["maps"])
        scores.append(scored["scores"])
    return {"files": files, "maps": torch.cat(maps), "scores": torch.cat(scores)}


def thresholds_for_false_reject_rate(
    good_maps: dict[str, Any],
    model_checkpoint: dict[str, Any],
    false_reject_rate: float | None,
    inference: dict[str, Any],
    evaluation: dict[str, Any],
) -> dict[str, Any]:
    """The image threshold at the (1 − false_reject_rate) quantile of the good images' scores
    (evaluation.threshold_quantile when not given), the pixel threshold at
    evaluation.pixel_threshold_quantile of their pixels; bound to the model, with the number of
    images and the Clopper–Pearson bound of the false-reject rate it implies."""
    if false_reject_rate is None:
        quantile = evaluation["threshold_quantile"]
    elif 0.0 <= false_reject_rate < 1.0:
        quantile = 1.0 - false_reject_rate
    else:
        raise ValueError(f"false_reject_rate must lie in [0, 1), got {false_reject_rate}.")
    scores = good_maps["scores"].numpy()
    thresholds: dict[str, Any] = calibrate_thresholds(
        scores,
        good_maps["maps"].numpy(),
        quantile=quantile,
        pixel_quantile=evaluation["pixel_threshold_quantile"],
    )
    thresholds["scoring"] = Scoring.from_params(inference, evaluation).to_dict()
    thresholds["model"] = model_binding(model_checkpoint)
    thresholds["calibration"] = calibration_record(scores, thresholds["image"], "good_dir")
    record = thresholds["calibration"]
    logger.info(
        "Image threshold %.4f from %d good images: %d at or above it (false-reject rate %.3f, "
        "95 %% upper bound %.3f).",
        thresholds["image"],
        record["good_images"],
        record["at_or_above_threshold"],
        record["false_reject_rate"],
        record["false_reject_rate_upper_95"],
    )
    if np.isclose(quantile, 1.0) or record["good_images"] < 1 / max(1.0 - quantile, 1e-9):
        logger.warning(
            "%d good images cannot show a false-reject rate of %.3g: the threshold is their "
            "maximum, and its bound is %.3f. Give more good images for a tighter one.",
            record["good_images"],
            1.0 - quantile,
            record["false_reject_rate_upper_95"],
        )
    return thresholds
