"""One category's run inside a Ray worker: a Kedro ``train_eval`` session under a child MLflow run.

Why a child run opened here: kedro-mlflow logs into an MLflow run that is already active instead
of opening its own (its documented hand-over for orchestrators), so the run is created with the
sweep's parent run id and tag, and the category's params, metrics and artifacts land in it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfusion_ad.sweep.project import METRICS_DATASET, PIPELINE, KedroTarget
from transfusion_ad.sweep.state import task_name

logger = logging.getLogger(__name__)

SWEEP_TAG = "transfusion_ad.sweep_id"  # on the parent run and on every category run
SEED_TAG = "transfusion_ad.seed"  # on every task run of a sweep with seeds


@dataclass(frozen=True)
class CategoryTask:
    """Everything a worker needs to run one category, at one seed when the sweep has seeds
    (sent to it by Ray, so plain data)."""

    target: KedroTarget
    category: str
    sweep_id: str
    parent_run_id: str | None
    num_threads: int = 1
    seed: int | None = None

    @property
    def name(self) -> str:
        """The task's name in the sweep state: the category, or ``<category>/seed<N>``."""
        return task_name(self.category, self.seed)


@dataclass(frozen=True)
class CategoryResult:
    """How one task ended; ``metrics`` as written to its metrics.json (None if it failed)."""

    category: str
    succeeded: bool
    seconds: float | None  # None when Ray lost the worker before it could say
    error: str | None = None
    run_id: str | None = None
    metrics: dict[str, Any] | None = None
    seed: int | None = None

    @property
    def name(self) -> str:
        """The task's name in the sweep state, as ``CategoryTask.name``."""
        return task_name(self.category, self.seed)


def run_category(task: CategoryTask) -> CategoryResult:
    """Run the ``train_eval`` pipeline for ``task.category`` (at ``task.seed``, into the seed's
    own output folders); never raises for a failed run.

    CPU threads are pinned to ``num_threads`` (the task's CPUs) so parallel tasks do not
    oversubscribe the cores; the GPU, if any, is the one Ray made visible.
    """
    import mlflow
    import torch

    torch.set_num_threads(task.num_threads)
    started = time.monotonic()
    run_id = None
    try:
        _enter_project(task.target.project_path)
        with task.target.session(task.category, task.seed) as session:
            context = session.load_context()  # kedro-mlflow sets the tracking URI and experiment
            with mlflow.start_run(
                run_name=context.mlflow.tracking.run.name,
                parent_run_id=task.parent_run_id,
                tags={SWEEP_TAG: task.sweep_id, **_seed_tag(task.seed)},
            ) as run:
                run_id = run.info.run_id
                session.run(pipeline_names=[PIPELINE])
            metrics = context.catalog.load(METRICS_DATASET)
    except Exception as error:
        logger.error("Task '%s' failed:\n%s", task.name, traceback.format_exc())
        return CategoryResult(
            task.category,
            succeeded=False,
            seconds=time.monotonic() - started,
            error=f"{type(error).__name__}: {error}",
            run_id=run_id,
            seed=task.seed,
        )
    return CategoryResult(
        task.category,
        True,
        time.monotonic() - started,
        run_id=run_id,
        metrics=metrics,
        seed=task.seed,
    )


def _seed_tag(seed: int | None) -> dict[str, str]:
    return {} if seed is None else {SEED_TAG: str(seed)}


def _enter_project(project_path: Path) -> None:
    """Work in the project root, as ``kedro run`` does: configured relative paths are its."""
    if not project_path.is_dir():
        raise FileNotFoundError(
            f"The project '{project_path}' does not exist on worker node {socket.gethostname()}. "
            "Every Ray node needs the project at the same path (a shared filesystem, or the "
            "same container image); see docs/distributed.md."
        )
    os.chdir(project_path)
