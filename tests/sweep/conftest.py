"""A throw-away copy of the project (conf, pyproject, the shipped sample) and small categories.

Sweeps write data/, mlflow.db and sweep state; running them in a copy keeps the repository clean.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SAMPLE_CATEGORY = "fryum"


def make_project(project_root: Path, destination: Path) -> Path:
    """conf/ (without local secrets), pyproject.toml and data/01_raw/sample under destination."""
    conf = destination / "conf"
    for name in ("base", "quick"):
        shutil.copytree(project_root / "conf" / name, conf / name)
    shutil.copy(project_root / "conf" / "logging.yml", conf / "logging.yml")
    (conf / "local").mkdir()
    shutil.copy(project_root / "pyproject.toml", destination / "pyproject.toml")
    shutil.copytree(
        project_root / "data" / "01_raw" / "sample", destination / "data" / "01_raw" / "sample"
    )
    return destination


def make_category(source: Path, destination: Path, train: int, good: int, bad: int) -> Path:
    """An MVTec-layout category from the first images of ``source`` (masks paired by stem)."""
    for split, defect, count in (("train", "good", train), ("test", "good", good)):
        target = destination / split / defect
        target.mkdir(parents=True)
        for image in sorted((source / split / defect).iterdir())[:count]:
            shutil.copy(image, target / image.name)
    (destination / "test" / "bad").mkdir(parents=True)
    (destination / "ground_truth" / "bad").mkdir(parents=True)
    for image in sorted((source / "test" / "bad").iterdir())[:bad]:
        shutil.copy(image, destination / "test" / "bad" / image.name)
        mask = source / "ground_truth" / "bad" / f"{image.stem}_mask.png"
        shutil.copy(mask, destination / "ground_truth" / "bad" / mask.name)
    return destination


@pytest.fixture(scope="module")
def sweep_project(tmp_path_factory, project_root, sample_root) -> Path:
    """A project copy with a data root ``roots/`` holding ``fryum`` (the shipped sample) and
    ``small`` (20 train, 4 good and 4 bad test images of it)."""
    project = make_project(project_root, tmp_path_factory.mktemp("sweep_project"))
    roots = project / "roots"
    shutil.copytree(sample_root / SAMPLE_CATEGORY, roots / SAMPLE_CATEGORY)
    make_category(sample_root / SAMPLE_CATEGORY, roots / "small", train=20, good=4, bad=4)
    return project
