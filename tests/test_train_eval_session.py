"""End to end: `kedro run --env quick --pipelines=train_eval` in a throw-away copy of the project,
with MLflow tracking, versioned outputs and kedro-viz; and the errors a user sees first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from kedro.framework.session import KedroSession
from kedro.io import DatasetError
from support import TINY_RUNTIME, tracking_uri

from transfusion_ad.validation import ParameterError

pytestmark = pytest.mark.slow  # trains a model or runs a pipeline


def test_quick_train_eval_end_to_end(project_copy):
    uri = tracking_uri(project_copy)
    params = {**TINY_RUNTIME, "mlflow_tracking_uri": uri}
    with KedroSession.create(project_path=project_copy, env="quick", runtime_params=params) as s:
        s.run(pipeline_names=["train_eval"])

    run_dir = project_copy / "data" / "08_reporting" / "visa" / "fryum"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("image_auroc", "image_ap", "pixel_auroc", "pixel_ap", "aupro", "f1_max"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert {"image", "pixel"} <= set(metrics["thresholds"])
    assert (run_dir / "report.md").is_file()
    assert (run_dir / "figures" / "roc_curve.png").is_file()

    versions = list((project_copy / "data" / "06_models" / "visa" / "fryum" / "model.pt").iterdir())
    assert len(versions) == 1 and (versions[0] / "model.pt").is_file()

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("transfusion_ad")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_name for r in runs] == ["visa/fryum"]
    run = runs[0]
    assert run.data.metrics["image_auroc"] == pytest.approx(metrics["image_auroc"])
    epochs = [m.step for m in client.get_metric_history(run.info.run_id, "train_total")]
    assert epochs == [1, 2], "training loss is logged once per epoch"
    assert run.data.params["training.epochs"] == "2"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"figures", "model", "report"} <= artifacts


def test_missing_dataset_stops_at_once_with_data_layer_error(project_copy):
    params = {
        "mlflow_tracking_uri": tracking_uri(project_copy),
        "category": "capsule",
        # the paper recipe needs DTD, whose check could come first: let it pass
        "synthesis": {"texture_dir": "data/01_raw/sample/textures"},
    }
    with (
        KedroSession.create(project_path=project_copy, runtime_params=params) as session,
        pytest.raises(DatasetError, match="does not exist.*Download MVTec AD") as error,
    ):
        session.run(pipeline_names=["train_eval"])
    assert "mvtec_ad" in str(error.value)
    assert not (project_copy / "data" / "06_models").exists(), "no work before the error"


def test_bad_image_size_is_refused_before_any_work(project_copy):
    params = {"mlflow_tracking_uri": tracking_uri(project_copy), "image_size": 100}
    with (
        pytest.raises(ParameterError, match="'image_size' is 100 but must be a positive multiple"),
        KedroSession.create(project_path=project_copy, env="quick", runtime_params=params) as s,
    ):
        s.run(pipeline_names=["train_eval"])
    assert not (project_copy / "data" / "02_intermediate").exists()


def test_kedro_viz_build(project_copy):
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(project_copy)}
    kedro = Path(sys.executable).with_name("kedro")
    result = subprocess.run(
        [str(kedro), "viz", "build"],
        check=False,
        cwd=project_copy,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    graph = json.loads((project_copy / "build" / "api" / "main").read_text())
    assert graph["layers"] == [
        "raw",
        "intermediate",
        "model_input",
        "feature",
        "models",
        "model_output",
        "reporting",
    ]
    tasks = {node["name"] for node in graph["nodes"] if node["type"] == "task"}
    assert {
        "train_transfusion_model",
        "reverse_process_test_images",
        "compute_test_metrics",
    } <= tasks
