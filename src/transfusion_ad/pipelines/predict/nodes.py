"""Nodes of predict: score a folder of new images with a trained model and its thresholds.

The scores are those of the evaluation for the same image: core.detector decodes, resizes,
runs the reverse process and fuses as the evaluation does, batch by batch.
"""

from __future__ import annotations

import logging
from collections import Counter
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from transfusion_ad.core.bundle import check_recipe
from transfusion_ad.core.detector import Scoring, TransFusionDetector
from transfusion_ad.core.protocol import warn_if_test_calibrated
from transfusion_ad.core.thresholds import override_thresholds
from transfusion_ad.data import UnreadableImageError
from transfusion_ad.data.images import list_image_files
from transfusion_ad.reporting.overlays import HeatmapStyle, render_mask, render_overlay

logger = logging.getLogger(__name__)


def list_input_images(input_dir: str | None) -> dict[str, Any]:
    """{"root": input_dir, "files": its images as sorted relative paths}, subfolders included
    (hidden files and folders left out)."""
    if not input_dir:
        raise ValueError(
            "No folder to score: give one with "
            "`kedro run --pipelines=predict --params input_dir=path/to/images`."
        )
    files = list_image_files(input_dir)
    logger.info("%d image(s) to score in '%s'.", len(files), input_dir)
    return {"root": str(input_dir), "files": files}


def _check_thresholds(thresholds: dict[str, float]) -> None:
    missing = {"image", "pixel"} - set(thresholds)
    if missing:
        raise ValueError(
            f"The thresholds have no {', '.join(sorted(missing))} entry (got {thresholds}); "
            "re-run the evaluation pipeline for this model to calibrate them."
        )


def _decode(
    detector: TransFusionDetector, root: Path, files: list[str], unreadable: dict[str, str]
) -> list[tuple[str, torch.Tensor]]:
    """(file, uint8 (1, 3, S, S) as the detector prepares it) of the readable files; the others
    go to ``unreadable``."""
    decoded = []
    for file in files:
        try:
            decoded.append((file, detector.prepare([root / file])[0]))
        except (UnreadableImageError, OSError) as error:
            reason = str(error.__cause__ or error)
            unreadable[file] = f"unreadable image: {reason}"
            logger.warning("Cannot read '%s' (%s): not scored.", root / file, reason)
    return decoded


def score_images(
    model_checkpoint: dict[str, Any],
    thresholds: dict[str, float],
    threshold_overrides: dict[str, float | None],
    images_to_score: dict[str, Any],
    inference: dict[str, Any],
    evaluation: dict[str, Any],
    image_size: int,
    model: dict[str, Any],
    device: str,
) -> dict[str, Any]:
    """Fused anomaly maps and image scores of every readable image, inference.batch_size at a
    time: {"root", "files", "maps": (N, S, S), "scores": (N,), "unreadable": {file: reason},
    "thresholds"}: the calibrated thresholds with ``threshold_overrides`` (params:thresholds)
    applied. Refuses a model trained with another recipe than the parameters."""
    check_recipe(model_checkpoint, image_size, model)
    _check_thresholds(thresholds)
    if any(threshold_overrides.get(key) is None for key in ("image", "pixel")):
        warn_if_test_calibrated(thresholds, "the thresholds dataset")
    thresholds = override_thresholds(thresholds, **threshold_overrides)
    detector = TransFusionDetector.load(
        model_checkpoint,
        device,
        precision=inference["precision"],
        scoring=None if "scoring" in thresholds else Scoring.from_params(inference, evaluation),
        thresholds=thresholds,
    )
    root, files = Path(images_to_score["root"]), images_to_score["files"]
    batch = inference["batch_size"]
    scored: list[str] = []
    maps, scores = [], []
    unreadable: dict[str, str] = {}
    for start in tqdm(range(0, len(files), batch), desc="predict", unit="batch"):
        decoded = _decode(detector, root, files[start : start + batch], unreadable)
        if not decoded:
            continue
        names = [file for file, _ in decoded]
        fused = detector.score_prepared(torch.cat([pixels for _, pixels in decoded]), batch)
        scored += names
        maps.append(fused["maps"])
        scores.append(fused["scores"])
    if not scored:
        raise ValueError(
            f"None of the {len(files)} image(s) in '{root}' could be read: "
            + "; ".join(f"{file} ({reason})" for file, reason in unreadable.items())
        )
    if unreadable:
        logger.warning(
            "Scored %d of %d images; not scored (unreadable): %s",
            len(scored),
            len(files),
            ", ".join(unreadable),
        )
    return {
        "root": str(root),
        "files": scored,
        "maps": torch.cat(maps),
        "scores": torch.cat(scores),
        "unreadable": unreadable,
        "thresholds": dict(thresholds),
    }


def output_names(files: list[str]) -> dict[str, str]:
    """Relative PNG name per input file: its path with .png; files that would share a name
    (a.jpg and a.png) keep their extension in it (a_jpg.png, a_png.png)."""
    bases = {file: PurePosixPath(file).with_suffix("") for file in files}
    counts = Counter(bases.values())
    names = {}
    for file, base in bases.items():
        unique = (
            base if counts[base] == 1 else base.with_name(f"{base.name}_{file.rsplit('.', 1)[1]}")
        )
        names[file] = f"{unique.as_posix()}.png"
    return names


def render_predictions(scored_images: dict[str, Any], heatmap: dict[str, Any]) -> dict[str, Any]:
    """What the predictions dataset writes: scores.csv rows (image, score, anomalous yes/no, the
    PNG paths, error) in input order, and a lazily rendered overlay and mask per scored image."""
    style = HeatmapStyle.from_params(heatmap)
    root, thresholds = Path(scored_images["root"]), scored_images["thresholds"]
    unreadable = scored_images["unreadable"]
    names = output_names([*scored_images["files"], *unreadable])
    maps, scores = scored_images["maps"].numpy(), scored_images["scores"].numpy()
    rows, overlays, masks = [], {}, {}
    for index, file in enumerate(scored_images["files"]):
        score, name = float(scores[index]), names[file]
        anomalous = "yes" if score >= thresholds["image"] else "no"
        rows.append((file, score, anomalous, f"overlays/{name}", f"masks/{name}", ""))
        overlays[name] = partial(
            render_overlay, root / file, maps[index], style, thresholds["pixel"]
        )
        masks[name] = partial(render_mask, root / file, maps[index], thresholds["pixel"])
    rows += [(file, None, "", "", "", reason) for file, reason in unreadable.items()]
    columns = ["image", "score", "anomalous", "overlay", "mask", "error"]
    frame = pd.DataFrame(rows, columns=columns).sort_values("image", kind="stable")
    flagged = int((frame["anomalous"] == "yes").sum())
    logger.info(
        "%d of %d scored image(s) flagged anomalous (image threshold %.4f).",
        flagged,
        len(scored_images["files"]),
        thresholds["image"],
    )
    used = {key: thresholds[key] for key in ("image", "pixel", "overridden")}
    return {
        "scores": frame.reset_index(drop=True),
        "overlays": overlays,
        "masks": masks,
        "thresholds": used,
    }
