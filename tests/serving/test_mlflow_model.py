"""The registered MLflow model served over REST by `mlflow models serve`: a real HTTP POST of a
shipped image returns the score that the evaluation gave it."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import mlflow
import pytest
import requests
import torch
from support import free_port, start_in_own_group, stop_group, tracking_uri, wait_for_http

from transfusion_ad.serving.mlflow_model import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND

pytestmark = pytest.mark.slow  # trains a model or runs a pipeline

NAME = "transfusion_ad-visa-fryum"


def _evaluated(project: Path) -> dict:
    maps = next((project / "data/07_model_output/visa/fryum").glob("anomaly_maps.pt/*/*"))
    return torch.load(maps, weights_only=True)


def test_train_eval_registers_the_model_in_the_model_training_view(trained_project):
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(trained_project))
    versions = client.search_model_versions(f"name='{NAME}'")
    assert len(versions) == 1
    experiment = client.get_experiment_by_name("transfusion_ad")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    run = client.get_run(versions[0].run_id)
    assert run.info.run_name == "visa/fryum" and run.info.status == "FINISHED"
    model = mlflow.models.get_model_info(f"models:/{NAME}/{versions[0].version}")
    assert model.signature.inputs.input_names() == ["image"]
    assert model.signature.outputs.input_names() == ["score", "anomalous"]


@pytest.mark.slow
def test_mlflow_models_serve_scores_a_posted_image_as_the_evaluation(trained_project):
    evaluated = _evaluated(trained_project)
    picked = [0, len(evaluated["paths"]) - 1]
    port = free_port()
    venv_bin = Path(
        sys.executable
    ).parent  # mlflow starts uvicorn from PATH, as an activated venv has
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": tracking_uri(trained_project),
        "OMP_NUM_THREADS": "1",
    }
    mlflow_cli = venv_bin / "mlflow"
    server = start_in_own_group(
        [
            str(mlflow_cli),
            "models",
            "serve",
            "-m",
            f"models:/{NAME}/latest",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=trained_project,
        env=env,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", server, timeout=180)
        rows = [
            [base64.b64encode(Path(evaluated["paths"][i]).read_bytes()).decode()] for i in picked
        ]
        body = {"dataframe_split": {"columns": ["image"], "data": rows}}
        answer = requests.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=120)
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        bad = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            json={"dataframe_split": {"columns": ["image"], "data": [["not base64!"]]}},
            timeout=60,
        )
    finally:
        stop_group(server)
    assert len(predictions) == 2
    for record, index in zip(predictions, picked, strict=True):
        assert record["score"] == pytest.approx(float(evaluated["scores"][index]), abs=1e-5)
        assert isinstance(record["anomalous"], bool)
    assert bad.status_code >= 400 and "row 0 of column 'image'" in bad.text
