"""`transfusion-ad predict` and `transfusion-ad export` on the model of a trained project copy:
the evaluation's scores, the exit codes a shell script on a line relies on, thresholds given for
one run, and the ONNX export scoring as PyTorch does."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support import inside

from transfusion_ad.commands import main
from transfusion_ad.core.bundle import build_network, load_bundle
from transfusion_ad.serving.score_files import EXIT_ANOMALOUS, EXIT_OK, EXIT_USAGE

pytestmark = pytest.mark.slow  # trains a model or runs a pipeline


def _evaluated(project: Path) -> dict[str, float]:
    maps = next((project / "data/07_model_output/visa/fryum").glob("anomaly_maps.pt/*/*"))
    evaluated = torch.load(maps, weights_only=True)
    return dict(zip(evaluated["paths"], evaluated["scores"].tolist(), strict=True))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as stream:
        return list(csv.DictReader(stream))


def _bundle(project: Path) -> Path:
    return next((project / "data/06_models/visa/fryum/model_bundle.pt").glob("*/model_bundle.pt"))


def test_predict_prints_writes_and_scores_as_the_evaluation(trained_project, tmp_path, capsys):
    folder = trained_project / "data/01_raw/sample/fryum/test/bad"
    out = tmp_path / "scores.csv"
    with inside(trained_project):
        code = main(
            ["predict", "--env", "quick", "--category", "fryum", str(folder), "--csv", str(out)]
            + ["--overlays", str(tmp_path / "overlays")]
        )
    rows = _rows(out)
    assert list(rows[0]) == ["image", "score", "anomalous", "error"]
    evaluated = _evaluated(trained_project)
    assert sorted(Path(r["image"]).name for r in rows) == sorted(p.name for p in folder.iterdir())
    for row in rows:
        assert float(row["score"]) == pytest.approx(evaluated[row["image"]], abs=1e-5)
    thresholds = json.loads(out.with_suffix(".json").read_text())["thresholds"]
    flagged = [float(r["score"]) >= thresholds["image"] for r in rows]
    assert [r["anomalous"] == "true" for r in rows] == flagged
    assert code == (EXIT_ANOMALOUS if any(flagged) else EXIT_OK)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(rows) and printed[0].split("\t")[0] == rows[0]["image"]
    assert len(list((tmp_path / "overlays").glob("*.png"))) == len(rows)


def test_a_threshold_for_the_run_decides_the_exit_code_and_is_recorded(trained_project, tmp_path):
    image = trained_project / "data/01_raw/sample/fryum/test/good"
    bundle = str(_bundle(trained_project))
    out = tmp_path / "low.csv"
    assert main(["predict", "--bundle", bundle, str(image), "--threshold", "0", "--csv", str(out)])
    assert all(row["anomalous"] == "true" for row in _rows(out))
    recorded = json.loads(out.with_suffix(".json").read_text())["thresholds"]
    assert recorded["image"] == 0.0 and recorded["overridden"]["image"]["used"] == 0.0
    high = ["predict", "--bundle", bundle, str(image), "--params", "thresholds.image=2.0"]
    assert main(high) == EXIT_OK


def test_the_installed_command_exits_3_when_a_part_is_anomalous(trained_project):
    command = Path(sys.executable).with_name("transfusion-ad")
    image = next((trained_project / "data/01_raw/sample/fryum/test/bad").iterdir())
    bundle = str(_bundle(trained_project))
    result = subprocess.run(
        [str(command), "predict", "--bundle", bundle, str(image), "--threshold", "0"],
        capture_output=True,
        text=True,
        check=False,
        cwd=trained_project,
    )
    assert result.returncode == EXIT_ANOMALOUS, result.stderr
    assert result.stdout.strip().endswith("anomalous")


def test_no_model_is_a_clear_usage_error(trained_project, tmp_path, capsys):
    with inside(trained_project):
        code = main(["predict", "--env", "quick", "--category", "capsule", str(tmp_path)])
    assert code == EXIT_USAGE
    assert "No image in '" in capsys.readouterr().err
    image = next((trained_project / "data/01_raw/sample/fryum/test/bad").iterdir())
    with inside(trained_project):
        code = main(["predict", "--env", "quick", "--category", "capsule", str(image)])
    assert code == EXIT_USAGE
    assert "No model bundle of category 'capsule'" in capsys.readouterr().err


def test_the_onnx_export_scores_two_images_as_pytorch(trained_project, tmp_path, capsys):
    out = tmp_path / "export"
    with inside(trained_project):
        assert main(["export", "--env", "quick", "--category", "fryum", "--out", str(out)]) == 0
    spec = json.loads((out / "transfusion.json").read_text())
    assert spec["opset"] == 17 and spec["reverse_loop"]["steps"] == [4, 3, 2, 1]
    assert spec["fusion"]["box_size"] == 3
    evaluated = _evaluated(trained_project)
    images = sorted(evaluated)[:2]
    csv_out = tmp_path / "onnx.csv"
    main(["predict", "--onnx", str(out), *images, "--csv", str(csv_out)])
    for row in _rows(csv_out):
        assert float(row["score"]) == pytest.approx(evaluated[row["image"]], abs=1e-4)


def test_the_torchscript_export_is_the_network(trained_project, tmp_path):
    bundle = _bundle(trained_project)
    main(["export", "--bundle", str(bundle), "--format", "torchscript", "--out", str(tmp_path)])
    traced = torch.jit.load(str(tmp_path / "network.pt"))
    network = build_network(load_bundle(bundle))
    x, t = torch.rand(3, 4, 32, 32), torch.tensor([4, 2, 1])
    with torch.no_grad():
        for ours, theirs in zip(traced(x, t), network(x, t), strict=True):
            assert torch.allclose(ours, theirs, atol=1e-5)
