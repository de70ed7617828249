"""Kedro dataset for one predict run: a folder with scores.csv, overlays/ and masks/ (PNG).

Why a dataset of its own: the run's outputs are kept together and versioned as one, and the PNGs
are rendered lazily (like PartitionedDataset's lazy saving), one at a time while they are
written, so a folder of thousands of full-size images never sits in memory at once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from kedro.io import AbstractVersionedDataset, DatasetError, Version
from PIL import Image
from tqdm.auto import tqdm

SCORES_FILE = "scores.csv"
THRESHOLDS_FILE = "thresholds.json"
IMAGE_FOLDERS = ("overlays", "masks")

PixelsOrRenderer = np.ndarray | Callable[[], np.ndarray]


class PredictionsDataset(AbstractVersionedDataset[dict, dict]):
    """Save ``{"scores": DataFrame, "overlays": {name: pixels}, "masks": {name: pixels}}`` and,
    when given, ``"thresholds"`` (the thresholds the run decided with) as thresholds.json.

    Names are relative PNG paths (``bad/000.png``); pixels are uint8 arrays (H, W, 3) or (H, W),
    or callables returning one. The folder is written under a temporary name and renamed, so an
    interrupted run leaves no half-written version. ``load()`` returns the scores, the PNG
    paths and the thresholds if written: ``{"scores": DataFrame, "overlays": {name: Path},
    "masks": {name: Path}, "thresholds": {...}}``.

    Example catalog entry::

        predictions:
          type: transfusion_ad.pipelines.predict.dataset.PredictionsDataset
          filepath: data/07_model_output/visa/fryum/predictions
          versioned: true
    """

    def __init__(
        self,
        filepath: str,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(filepath=PurePosixPath(filepath), version=version, exists_function=_exists)
        self.metadata = metadata

    def save(self, data: Mapping[str, Any]) -> None:
        target = Path(self._get_save_path())
        # Staged beside the dataset's folder, so a failed save leaves no (empty) version folder.
        home = Path(self._filepath).parent
        home.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=home, prefix=f".{target.name}."))
        try:
            data["scores"].to_csv(staging / SCORES_FILE, index=False)
            if "thresholds" in data:
                text = json.dumps(data["thresholds"], indent=1, sort_keys=True)
                (staging / THRESHOLDS_FILE).write_text(text + "\n")
            items = [
                (folder, name, data[folder][name])
                for folder in IMAGE_FOLDERS
                for name in data[folder]
            ]
            for folder, name, pixels in tqdm(items, desc="write predictions", unit="png"):
                _write_png(staging / folder / name, pixels)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging)

    def load(self) -> dict[str, Any]:
        root = Path(self._get_load_path())
        if not (root / SCORES_FILE).is_file():
            raise DatasetError(
                f"No predictions at '{root}': run `kedro run --pipelines=predict "
                "--params input_dir=<folder>` first."
            )
        # Only an empty score (an unreadable image) is missing; names stay text, whatever they are.
        scores = pd.read_csv(root / SCORES_FILE, keep_default_na=False, na_values={"score": [""]})
        result: dict[str, Any] = {"scores": scores}
        if (root / THRESHOLDS_FILE).is_file():
            result["thresholds"] = json.loads((root / THRESHOLDS_FILE).read_text())
        for folder in IMAGE_FOLDERS:
            files = sorted((root / folder).rglob("*.png"))
            result[folder] = {path.relative_to(root / folder).as_posix(): path for path in files}
        return result

    def _exists(self) -> bool:
        try:
            path = self._get_load_path()
        except DatasetError:
            return False
        return _exists(str(path))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}


def _exists(path: str) -> bool:
    return (Path(path) / SCORES_FILE).is_file()


def _write_png(path: Path, pixels: PixelsOrRenderer) -> None:
    array = pixels() if callable(pixels) else pixels
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise DatasetError(
            f"'{path.name}': expected uint8 pixels (H, W) or (H, W, 3), got {array.dtype} "
            f"{array.shape}."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")
