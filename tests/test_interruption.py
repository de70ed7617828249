"""A training process killed with SIGKILL mid-epoch resumes from its last checkpoint when the
same command is run again, and finishes with an unbroken loss history."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from kedro.framework.session import KedroSession
from support import tracking_uri

from transfusion_ad.core.recipes import model_from_recipe

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
            s.run(pipeline_name=stage)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, "training ended before it could be interrupted"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.05)


def test_sigkill_mid_epoch_then_same_command_resumes(project_copy):
    _prepare_inputs(project_copy)
    command = _training_command(project_copy)
    checkpoints = project_copy / "data" / "06_models" / "visa" / "fryum" / "checkpoints"
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}

    first = subprocess.Popen(
        command,
        cwd=project_copy,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(checkpoints / "checkpoint-epoch00002.pt", first, timeout=240)
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
    payload = torch.load(versions[0] / "model.pt", weights_only=False)
    assert payload["epochs"] == EPOCHS
    fresh = model_from_recipe(payload["recipe"]).state_dict()
    assert {k: v.shape for k, v in payload["model_state"].items()} == {
        k: v.shape for k, v in fresh.items()
    }
