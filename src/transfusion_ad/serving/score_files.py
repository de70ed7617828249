"""``transfusion-ad predict``: score image files with a model bundle (or its ONNX export) and
write one line per image, a CSV and, optionally, overlays; for shell scripts on a line.

Exit codes: 0 when every image was scored and none is anomalous, 3 when any image is anomalous
(EXIT_ANOMALOUS), 2 for bad input (no model, no image, bad threshold). An unreadable image gets a
row with its error and does not stop the others.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from omegaconf import OmegaConf
from PIL import Image
from tqdm.auto import tqdm

from transfusion_ad.core.thresholds import override_thresholds
from transfusion_ad.data import UnreadableImageError
from transfusion_ad.data.images import list_image_files, load_image
from transfusion_ad.reporting.overlays import HeatmapStyle, overlay

EXIT_OK, EXIT_USAGE, EXIT_ANOMALOUS = 0, 2, 3
BUNDLE_DATASET = "model_bundle"


class Scorer(Protocol):
    """What predict needs of a detector (TransFusionDetector or the ONNX runner)."""

    image_size: int
    thresholds: dict[str, Any] | None

    def __call__(self, images: Sequence[Any], batch_size: int = 8) -> Any: ...


@dataclass
class Scored:
    """One input file: its score, verdict and map at its own size, or why it was not scored."""

    image: str
    score: float | None = None
    anomalous: bool | None = None
    score_map: np.ndarray | None = None
    error: str = ""


def catalog_path(
    project: Path, env: str | None, dataset: str | None, category: str, name: str
) -> Path:
    """Where the project's catalog (with ``--env``) puts dataset ``name`` of a category."""
    from kedro.config import OmegaConfigLoader

    from transfusion_ad.settings import CONFIG_LOADER_ARGS

    runtime = {"category": category, **({"dataset": dataset} if dataset else {})}
    loader = OmegaConfigLoader(
        conf_source=str(project / "conf"), env=env, runtime_params=runtime, **CONFIG_LOADER_ARGS
    )
    entry = OmegaConf.to_container(OmegaConf.create(loader["catalog"][name]))
    return project / entry["filepath"]


def latest_bundle(project: Path, env: str | None, dataset: str | None, category: str) -> Path:
    """The newest ``model_bundle`` version of a category in a Kedro project."""
    folder = catalog_path(project, env, dataset, category, BUNDLE_DATASET)
    versions = sorted(p for p in folder.glob("*") if (p / folder.name).is_file())
    if not versions:
        raise FileNotFoundError(
            f"No model bundle of category '{category}' in {folder}: train and evaluate it first "
            f"(`kedro run --params category={category}`{f' --env {env}' if env else ''}), or "
            "give one with --bundle PATH."
        )
    return versions[-1] / folder.name


def expand_inputs(inputs: Iterable[str]) -> list[Path]:
    """Files as given, folders as their image files (subfolders included), in order."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += [path / name for name in list_image_files(path, "folder")]
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"'{path}' is neither an image file nor a folder.")
    return files


def score_files(
    scorer: Scorer, files: Sequence[Path], batch_size: int, progress: bool | None = None
) -> list[Scored]:
    """Score ``files`` ``batch_size`` at a time; a progress bar only on a terminal
    (``progress=None``)."""
    results: list[Scored] = []
    bar = tqdm(total=len(files), desc="predict", unit="img", disable=progress, file=sys.stderr)
    with bar:
        for start in range(0, len(files), batch_size):
            readable, pictures = [], []
            for path in files[start : start + batch_size]:
                try:
                    pictures.append(Image.fromarray(load_image(path)))
                    readable.append(path)
                except UnreadableImageError as error:
                    results.append(Scored(str(path), error=str(error.__cause__ or error)))
            if pictures:
                output = scorer(pictures, batch_size=batch_size)
                for index, path in enumerate(readable):
                    flagged = None if output.anomalous is None else bool(output.anomalous[index])
                    score = float(output.scores[index])
                    results.append(Scored(str(path), score, flagged, output.maps[index]))
            bar.update(len(files[start : start + batch_size]))
    order = {str(path): index for index, path in enumerate(files)}
    return sorted(results, key=lambda row: order[row.image])


def apply_threshold(scorer: Scorer, image: float | None, pixel: float | None) -> dict[str, Any]:
    """Override the scorer's thresholds for this run; returns the thresholds it decides with."""
    if scorer.thresholds is None:
        raise ValueError(
            "This model has no calibrated thresholds: use the model_bundle the evaluation wrote, "
            "or give --threshold."
        )
    scorer.thresholds = override_thresholds(scorer.thresholds, image=image, pixel=pixel)
    return scorer.thresholds


def write_csv(rows: Sequence[Scored], path: Path) -> None:
    """Columns image, score, anomalous (true/false), error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["image", "score", "anomalous", "error"])
        for row in rows:
            score = "" if row.score is None else f"{row.score:.8f}"
            flag = "" if row.anomalous is None else str(row.anomalous).lower()
            writer.writerow([row.image, score, flag, row.error])


def write_sidecar(path: Path, bundle: str, thresholds: dict[str, Any]) -> None:
    """What the scores were decided with, beside the CSV (``scores.json`` for ``scores.csv``)."""
    used = {key: thresholds.get(key) for key in ("image", "pixel", "overridden")}
    record = {"model": bundle, "thresholds": used}
    path.with_suffix(".json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def write_overlays(rows: Sequence[Scored], folder: Path, pixel_threshold: float | None) -> None:
    """One PNG per scored image: the map over the image on the fixed colour scale."""
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    style = HeatmapStyle()
    for row in rows:
        if row.score_map is None:
            continue
        name = Path(row.image).stem
        while f"{name}.png" in used:
            name += "_"
        used.add(f"{name}.png")
        pixels = overlay(load_image(row.image), row.score_map, style, pixel_threshold)
        Image.fromarray(pixels).save(folder / f"{name}.png")


def report(rows: Sequence[Scored], stream: Any = None) -> int:
    """Print one line per image (path, score, verdict) to ``stream`` (stdout) and return the
    exit code."""
    stream = stream or sys.stdout
    for row in rows:
        if row.error:
            print(f"{row.image}\terror\t{row.error}", file=stream)
            continue
        verdict = "anomalous" if row.anomalous else "good"
        print(f"{row.image}\t{row.score:.6f}\t{verdict}", file=stream)
    return EXIT_ANOMALOUS if any(row.anomalous for row in rows) else EXIT_OK
