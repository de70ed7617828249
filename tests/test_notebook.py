"""The notebook, executed in a throw-away copy of the project trained on the shipped sample (the
quick environment shrunk to a tiny recipe), and the predict command there: versioned outputs on
disk, a pinned model version, and the evaluation's scores for the same images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import torch
from kedro.framework.session import KedroSession
from nbclient import NotebookClient
from support import inside, tracking_uri

pytestmark = pytest.mark.slow  # trains a model or runs a pipeline

NOTEBOOK = "transfusion_ad_demo.ipynb"
KERNEL = "transfusion-ad-test"


@pytest.fixture
def kernel(tmp_path, monkeypatch) -> str:
    """A kernel spec for this interpreter (the venv's python), found first via JUPYTER_PATH."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec_json = {"argv": argv, "display_name": "transfusion_ad tests", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(spec_json))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL


def _predictions(project: Path) -> list[Path]:
    folder = project / "data" / "07_model_output" / "visa" / "fryum" / "predictions"
    return sorted(folder.glob("*/predictions")) if folder.is_dir() else []


def test_notebook_shows_the_report_and_scores_one_image(trained_project, kernel, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri(trained_project))
    before = _predictions(trained_project)
    notebook = nbformat.read(trained_project / "notebooks" / NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name=kernel,
        resources={"metadata": {"path": str(trained_project / "notebooks")}},
    )
    client.execute()

    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    markdown = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    assert any("# TransFusion AD report: visa / fryum" in text for text in markdown)
    assert any("data:image/png;base64," in text for text in markdown), "figures shown inline"
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2, "overlay and mask"

    written = [path for path in _predictions(trained_project) if path not in before]
    assert len(written) == 1
    scores = pd.read_csv(written[0] / "scores.csv")
    assert scores["image"].tolist() == ["000.JPG"] and scores["anomalous"].iloc[0] in ("yes", "no")
    assert (written[0] / "overlays" / "000.png").is_file()
    assert (written[0] / "masks" / "000.png").is_file()


def test_predict_with_pinned_versions_scores_as_the_evaluation(trained_project):
    versions = [p.name for p in (trained_project / "data/06_models/visa/fryum/model.pt").iterdir()]
    assert len(versions) == 1
    pinned = {"model_checkpoint": versions[0], "thresholds": versions[0]}
    input_dir = trained_project / "data" / "01_raw" / "sample" / "fryum" / "test" / "bad"
    params = {"mlflow_tracking_uri": tracking_uri(trained_project), "input_dir": str(input_dir)}
    before = _predictions(trained_project)
    with (
        inside(trained_project),
        KedroSession.create(project_path=trained_project, env="quick", runtime_params=params) as s,
    ):
        s.run(pipeline_names=["predict"], load_versions=pinned)
    written = [path for path in _predictions(trained_project) if path not in before]
    assert len(written) == 1
    scores = pd.read_csv(written[0] / "scores.csv").set_index("image")
    inputs = sorted(p.name for p in input_dir.iterdir())
    assert sorted(scores.index) == inputs
    assert sorted(p.name for p in (written[0] / "overlays").iterdir()) == sorted(
        f"{Path(name).stem}.png" for name in inputs
    )
    maps_file = next(
        (trained_project / "data/07_model_output/visa/fryum").glob("anomaly_maps.pt/*/*")
    )
    evaluated = torch.load(maps_file, weights_only=True)
    compared = 0
    for path, expected in zip(evaluated["paths"], evaluated["scores"].tolist(), strict=True):
        if Path(path).parent == input_dir:
            assert scores.loc[Path(path).name, "score"] == pytest.approx(expected, abs=1e-5)
            compared += 1
    assert compared == len(inputs)
