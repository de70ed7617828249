"""Shared fixtures: telemetry off, paths to the shipped sample and to ../shared data."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from kedro.framework.startup import bootstrap_project
from support import copy_project

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Sessions opened by tests track into a throw-away sqlite store, never the project's mlflow.db.
os.environ.setdefault(
    "MLFLOW_TRACKING_URI", f"sqlite:///{tempfile.mkdtemp(prefix='tfad-mlflow-')}/mlflow.db"
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_ROOT = PROJECT_ROOT / "data" / "01_raw" / "sample"
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def sample_root() -> Path:
    """The shipped VisA fryum sample (always present in the repository)."""
    return SAMPLE_ROOT


@pytest.fixture(scope="session")
def fryum_root() -> Path:
    """The full VisA fryum category from ../shared; skips where it is not available."""
    root = SHARED_DATA / "visa_fryum"
    if not (root / "fryum").is_dir():
        pytest.skip(f"full fryum data not found at {root} (only CI and developers have ../shared)")
    return root


@pytest.fixture
def project_copy(tmp_path, monkeypatch) -> Path:
    """A throw-away copy of the project, as the working directory, bootstrapped for sessions."""
    target = copy_project(tmp_path / "project")
    monkeypatch.chdir(target)
    bootstrap_project(target)
    return target
