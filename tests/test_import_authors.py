"""`transfusion-ad import-authors` on the oracle's checkpoint (the authors' release format),
imported as the fryum model of a project copy, then evaluated by the project's own pipelines
as if trained here. Skips only without ../shared."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from support import inside, tracking_uri

from transfusion_ad.commands import main
from transfusion_ad.core.bundle import load_bundle
from transfusion_ad.core.identity import weights_digest

WEIGHTS = (
    Path(__file__).resolve().parents[2]
    / "shared/oracles/authors_transfusion/free/models/fryum_model.pkl"
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"no oracle weights at {WEIGHTS}"),
]
# The oracle network's recipe, as parameters of the run that evaluates it.
AUTHORS_64 = {
    "image_size": 64,
    "model": {
        "base_width": 32,
        "channel_mults": [1, 2, 2, 2],
        "num_res_blocks": 2,
        "attention_levels": [2, 3],
        "num_steps": 20,
    },
    "evaluation": {"box_size": 7},
    "mlflow": {"log_model": False},
}


def _small_fryum(project: Path) -> Path:
    """12 training, 3 normal and 3 anomalous test images (with masks) of the shipped sample."""
    source, root = project / "data/01_raw/sample/fryum", project / "data/01_raw/small"
    for folder, count in (("train/good", 12), ("test/good", 3), ("test/bad", 3)):
        for image in sorted((source / folder).iterdir())[:count]:
            target = root / "fryum" / folder / image.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(image, target)
            mask = source / "ground_truth/bad" / f"{image.stem}_mask.png"
            if folder == "test/bad":
                (root / "fryum/ground_truth/bad").mkdir(parents=True, exist_ok=True)
                shutil.copy(mask, root / "fryum/ground_truth/bad" / mask.name)
    return root


def test_imported_weights_are_evaluated_as_if_trained_here(project_copy, capsys):
    command = ["import-authors", "--weights", str(WEIGHTS), "--dataset", "visa"]
    with inside(project_copy):
        code = main([*command, "--category", "fryum", "--image-size", "64", "--env", "quick"])
    assert code == 0 and "image_size 64" in capsys.readouterr().out
    written = list((project_copy / "data/06_models/visa/fryum/model.pt").glob("*/model.pt"))
    assert len(written) == 1
    bundle = load_bundle(written[0])
    params = {
        **AUTHORS_64,
        "data_root": str(_small_fryum(project_copy)),
        "mlflow_tracking_uri": tracking_uri(project_copy),
    }
    with KedroSession.create(project_path=project_copy, env="quick", runtime_params=params) as s:
        s.run(pipeline_names=["data_ingestion", "inference", "evaluation"])
    metrics = json.loads((project_copy / "data/08_reporting/visa/fryum/metrics.json").read_text())
    assert metrics["model"]["weights_digest"] == weights_digest(bundle["model_state"])
    assert 0.0 <= metrics["image_auroc"] <= 1.0 and metrics["image_metrics_images"] == 6
    deployable = next((project_copy / "data/06_models/visa/fryum/model_bundle.pt").glob("*/*"))
    assert load_bundle(deployable)["thresholds"]["model"] == metrics["model"]


def test_a_file_that_is_not_theirs_is_refused_saying_what_was_found(tmp_path, capsys):
    other = tmp_path / "model.pkl"
    other.write_bytes(b"PK not a state dict")
    command = ["import-authors", "--weights", str(other), "--dataset", "visa", "--category", "x"]
    assert main([*command, "--out", str(tmp_path / "b.pt")]) == 2
    assert "is not a PyTorch file" in capsys.readouterr().err
