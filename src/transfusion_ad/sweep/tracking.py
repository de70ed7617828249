"""The sweep's parent MLflow run: its settings, then the summary table and the dataset means.

Category runs are created by the workers as children of this run (``mlflow.parentRunId``) and
carry the same sweep tag, so the MLflow UI nests them under it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfusion_ad.reporting.results_table import TABLE_METRICS, Row
from transfusion_ad.sweep.project import KedroTarget
from transfusion_ad.sweep.state import (
    FAILED,
    PENDING,
    SKIPPED,
    SUCCEEDED,
    SweepState,
    parse_task_name,
)
from transfusion_ad.sweep.summary import STD_SUFFIX
from transfusion_ad.sweep.task import SWEEP_TAG

TABLE_FILE = "summary/summary_table.json"


@dataclass(frozen=True)
class ParentRun:
    """The sweep's MLflow run and the tracking URI it lives at."""

    run_id: str
    tracking_uri: str


def start_parent_run(target: KedroTarget, state: SweepState, tasks: Sequence[str]) -> ParentRun:
    """Create the parent run where the category runs will go: same tracking URI and experiment,
    resolved by kedro-mlflow from the project's mlflow.yml for ``target``.
    """
    from mlflow import MlflowClient

    with target.session() as session:
        config = session.load_context().mlflow
    client = MlflowClient(config.server.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment.name)
    run = client.create_run(
        experiment.experiment_id,
        run_name=f"{state.dataset}/sweep",
        tags={SWEEP_TAG: state.sweep_id},
    )
    settings = {
        "dataset": state.dataset,
        "env": state.env or "",
        "categories": ",".join(sorted({parse_task_name(name)[0] for name in tasks})),
        "seeds": ",".join(str(seed) for seed in state.seeds or []),
        "params": json.dumps(state.params, sort_keys=True),
    }
    for key, value in settings.items():
        client.log_param(run.info.run_id, key, value)
    return ParentRun(run.info.run_id, config.server.mlflow_tracking_uri)


def finish_parent_run(
    parent: ParentRun, state: SweepState, rows: list[Row] | None, files: Sequence[Path]
) -> None:
    """Log the summary files, the table itself (``summary/summary_table.json``, shown as a
    table by the MLflow UI), the mean row (as fractions, like the category runs; with seeds also
    ``std.<metric>``) and the task counts.

    The run ends FINISHED when every task succeeded or was done before, FAILED otherwise.
    """
    from mlflow import MlflowClient

    client = MlflowClient(parent.tracking_uri)
    run_id = parent.run_id
    for path in files:
        client.log_artifact(run_id, str(path), artifact_path="summary")
    metrics: dict[str, Any] = {
        f"categories.{status}": len(state.categories(status))
        for status in (SUCCEEDED, SKIPPED, FAILED, PENDING)
    }
    if rows:
        columns = list(rows[0])
        client.log_table(
            run_id, {column: [row.get(column) for row in rows] for column in columns}, TABLE_FILE
        )
        mean = rows[-1]
        for name in TABLE_METRICS:
            for prefix, column in (("mean", name), ("std", f"{name}{STD_SUFFIX}")):
                if mean.get(column) is not None:
                    metrics[f"{prefix}.{name}"] = float(mean[column]) / 100.0
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    client.set_terminated(run_id, "FAILED" if state.unfinished() else "FINISHED")
