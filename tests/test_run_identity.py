"""Results bound to their recipe, through real Kedro runs of the tiny recipe on the sample: a
changed recipe trains afresh beside the old one, the same recipe resumes, a model never meets
thresholds of another model, one recipe trains once at a time, a misspelt key stops the run."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from support import start_in_own_group, tracking_uri, wait_for_glob

from transfusion_ad.core.checkpoint import list_checkpoints
from transfusion_ad.core.identity import ModelMismatchError

pytestmark = pytest.mark.slow

MODELS = Path("data") / "06_models" / "visa" / "fryum"
ENV = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1", "OMP_NUM_THREADS": "1"}


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _run(project: Path, pipelines: list[str], load_versions=None, **params) -> list[str]:
    """One KedroSession run of the tiny recipe (1 epoch); returns the project's log messages."""
    runtime = {"mlflow_tracking_uri": tracking_uri(project), "training": {"epochs": 1}}
    for key, value in params.items():
        runtime[key] = {**runtime.get(key, {}), **value} if isinstance(value, dict) else value
    handler = _Messages()
    logger = logging.getLogger("transfusion_ad")
    logger.addHandler(handler)
    try:
        with KedroSession.create(project_path=project, env="tiny", runtime_params=runtime) as s:
            s.run(pipeline_names=pipelines, load_versions=load_versions)
    finally:
        logger.removeHandler(handler)
    return handler.messages


def _identity_folders(project: Path) -> dict[str, int]:
    """{identity: newest checkpoint epoch} under the category's checkpoint_dir."""
    root = project / MODELS / "checkpoints"
    return {
        folder.name: list_checkpoints(folder)[0][0]
        for folder in root.iterdir()
        if folder.is_dir() and list_checkpoints(folder)
    }


def _changed(messages: list[str]) -> list[str]:
    return [m for m in messages if m.startswith("recipe changed since the last run")]


def test_each_recipe_change_trains_afresh_and_the_same_recipe_resumes(project_copy):
    _run(project_copy, ["data_ingestion", "anomaly_synthesis", "training"])
    (first,) = _identity_folders(project_copy)

    log = _run(project_copy, ["training"], model={"num_steps": 4})
    assert _changed(log) == [
        "recipe changed since the last run of visa/fryum: num_steps 6 -> 4; training afresh"
    ]
    assert not [m for m in log if m.startswith("Resuming from")]

    log = _run(project_copy, ["training"], seed=5)  # num_steps back to the tiny recipe's 6
    assert _changed(log) == [
        "recipe changed since the last run of visa/fryum: num_steps 4 -> 6; seed 3 -> 5; "
        "training afresh"
    ]
    assert len(_identity_folders(project_copy)) == 3  # the others' checkpoints are kept

    log = _run(project_copy, ["training"], training={"epochs": 2})
    assert _changed(log) == [
        "recipe changed since the last run of visa/fryum: seed 5 -> 3; resuming this recipe's "
        f"checkpoints in {Path('data/06_models/visa/fryum/checkpoints') / first}"
    ]
    assert [m for m in log if m.startswith("Resuming from")]
    assert _identity_folders(project_copy)[first] == 2

    log = _run(project_copy, ["data_ingestion", "anomaly_synthesis", "training"], image_size=64)
    assert _changed(log) == [
        "recipe changed since the last run of visa/fryum: image_size 32 -> 64; training afresh"
    ]
    assert len(_identity_folders(project_copy)) == 4


def test_training_alone_refuses_a_train_set_decoded_at_another_size(project_copy):
    _run(project_copy, ["data_ingestion", "anomaly_synthesis"])
    with pytest.raises(ValueError, match="train_set holds 32x32 images but image_size is 64"):
        _run(project_copy, ["training"], image_size=64)


def test_predict_refuses_a_model_with_thresholds_of_another_model(project_copy, sample_root):
    _run(project_copy, ["train_eval"])
    (paired,) = [path.name for path in (project_copy / MODELS / "model.pt").iterdir()]
    time.sleep(1.1)  # Kedro versions are timestamps with millisecond resolution
    _run(project_copy, ["training"], training={"epochs": 2})  # a new model, old thresholds
    newer = max(path.name for path in (project_copy / MODELS / "model.pt").iterdir())
    images = str(sample_root / "fryum" / "test" / "good")

    with pytest.raises(ModelMismatchError) as error:
        _run(project_copy, ["predict"], input_dir=images)
    message = str(error.value)
    assert f"model.pt version {newer}" in message
    assert f"thresholds.json version {paired}" in message
    assert "kedro run --pipelines=evaluation" in message

    pinned = {"model_checkpoint": paired, "thresholds": paired}
    _run(project_copy, ["predict"], load_versions=pinned, input_dir=images)
    scores = next((project_copy / "data" / "07_model_output").rglob("scores.csv")).read_text()
    assert scores.count("\n") == 1 + len(list(Path(images).iterdir()))


def _kedro(*params: str) -> list[str]:
    kedro = Path(sys.executable).with_name("kedro")
    return [
        str(kedro),
        "run",
        "--env",
        "tiny",
        "--pipeline",
        "training",
        "--params",
        ",".join(params),
    ]


def test_a_second_run_of_the_same_recipe_fails_at_once_and_deletes_nothing(project_copy):
    _run(project_copy, ["data_ingestion", "anomaly_synthesis"])
    command = _kedro(
        "training.epochs=200",
        "training.checkpoint_every=1",
        f"mlflow_tracking_uri={tracking_uri(project_copy)}",
    )
    first = start_in_own_group(command, project_copy, ENV)
    root = project_copy / MODELS / "checkpoints"
    try:
        wait_for_glob(root, "*/checkpoint-epoch00001.pt", first, timeout=240)
        second = subprocess.run(
            command,
            cwd=project_copy,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert first.poll() is None, "the first run must still be training"
        checkpoints = list(root.glob("*/checkpoint-epoch*.pt"))
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    log = second.stdout + second.stderr
    assert second.returncode != 0
    assert ".lock is held by pid " + str(first.pid) in " ".join(log.split())
    assert checkpoints and all(path.exists() for path in checkpoints)


def test_a_misspelt_parameter_stops_the_run_before_any_work(project_copy):
    result = subprocess.run(
        _kedro("trainig.epochs=5"),
        check=False,
        cwd=project_copy,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=240,
    )
    log = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "unknown parameter trainig.epochs: did you mean training.epochs?" in log
    assert not (project_copy / "data" / "02_intermediate").exists()
