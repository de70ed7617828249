"""A training process killed with SIGKILL mid-epoch resumes from its last checkpoint when the
same command is run again, and finishes with an unbroken loss history; in MLflow the killed run
is marked FAILED and the finished one holds every epoch once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from kedro.framework.session import KedroSession
from support import start_in_own_group, tracking_uri, wait_for_glob

from transfusion_ad.core.bundle import load_bundle
from transfusion_ad.core.recipes import model_from_recipe

pytestmark = pytest.mark.slow  # trains a model or runs a pipeline

EPOCHS = 6


def _training_command(project: Path) -> list[str]:
    kedro = Path(sys.executable).with_name("kedro")
    params = (
        f"training.epochs={EPOCHS},training.checkpoint_every=1,"
        f"mlflow_tracking_uri={tracking_uri(project)}"
    )
    return [str(kedro), "run", "--env", "tiny", "--pipeline", "training", "--params", params]


def _prepare_inputs(project: Path) -> None:
    """Persist what training reads (train_set, foreground masks, texture bank)."""
    params = {"mlflow_tracking_uri": tracking_uri(project)}
    for stage in ("data_ingestion", "anomaly_synthesis"):
        with KedroSession.create(project_path=project, env="tiny", runtime_params=params) as s:
            s.run(pipeline_names=[stage])


def test_sigkill_mid_epoch_then_same_command_resumes(project_copy):
    _prepare_inputs(project_copy)
    command = _training_command(project_copy)
    checkpoints = project_copy / "data" / "06_models" / "visa" / "fryum" / "checkpoints"
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}

    first = start_in_own_group(command, project_copy, env)
    try:
        # <checkpoint_dir>/<run identity>/checkpoint-epoch00002.pt
        wait_for_glob(checkpoints, "*/checkpoint-epoch00002.pt", first, timeout=240)
        time.sleep(0.3)  # into epoch 3
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    assert not (project_copy / "data" / "06_models" / "visa" / "fryum" / "model.pt").exists()

    second = subprocess.run(
        command, cwd=project_copy, env=env, capture_output=True, text=True, check=False
    )
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-3000:]
    assert "Resuming from" in log

    history = json.loads(
        (
            project_copy / "data" / "08_reporting" / "visa" / "fryum" / "training_history.json"
        ).read_text()
    )
    assert [result["epoch"] for result in history["results"]] == list(range(1, EPOCHS + 1))

    versions = list((project_copy / "data" / "06_models" / "visa" / "fryum" / "model.pt").iterdir())
    assert len(versions) == 1
    payload = load_bundle(versions[0] / "model.pt")
    assert payload["epochs"] == EPOCHS
    fresh = model_from_recipe(payload["recipe"]).state_dict()
    assert {k: v.shape for k, v in payload["model_state"].items()} == {
        k: v.shape for k, v in fresh.items()
    }

    client = mlflow.MlflowClient(tracking_uri=tracking_uri(project_copy))
    experiment = client.get_experiment_by_name("transfusion_ad")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.run_identity != ''")
    by_status = {run.info.status: run for run in runs}
    assert sorted(by_status) == ["FAILED", "FINISHED"] and len(runs) == 2
    killed, finished = by_status["FAILED"], by_status["FINISHED"]
    assert killed.data.tags["failure_reason"].startswith(f"orphaned: process {first.pid}")
    assert killed.data.tags["run_identity"] == finished.data.tags["run_identity"]
    steps = [m.step for m in client.get_metric_history(finished.info.run_id, "train_total")]
    assert sorted(steps) == list(range(1, EPOCHS + 1))
