"""Shared fixtures: telemetry off, paths to the shipped sample and to ../shared data."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from support import copy_project, inside, tracking_uri

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Sessions opened by tests track into a throw-away sqlite store, never the project's mlflow.db.
os.environ.setdefault(
    "MLFLOW_TRACKING_URI", f"sqlite:///{tempfile.mkdtemp(prefix='tfad-mlflow-')}/mlflow.db"
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_ROOT = PROJECT_ROOT / "data" / "01_raw" / "sample"
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the test. Training or sampling with two OpenMP threads on a busy
    2-core machine can be 5–100× slower (threads spin waiting for each other)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


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


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory) -> Iterator[Path]:
    """A project copy whose `quick` environment is the tiny recipe (one epoch), trained and
    evaluated once with train_eval (MLflow model logged and registered), with the notebooks."""
    target = copy_project(tmp_path_factory.mktemp("trained") / "project")
    tiny = yaml.safe_load((target / "conf" / "tiny" / "parameters.yml").read_text())
    tiny["training"]["epochs"] = 1
    (target / "conf" / "quick" / "parameters.yml").write_text(yaml.safe_dump(tiny))
    shutil.copytree(PROJECT_ROOT / "notebooks", target / "notebooks")
    with inside(target):
        bootstrap_project(target)
        params = {"mlflow_tracking_uri": tracking_uri(target)}
        with KedroSession.create(project_path=target, env="quick", runtime_params=params) as s:
            s.run(pipeline_names=["train_eval"])
        yield target
