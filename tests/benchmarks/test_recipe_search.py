"""The recipe-search harness: trials by name, one CSV row per (trial, seed) with the run's own
metrics, child MLflow runs under one parent, and a search that resumes instead of repeating."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from support import copy_project

from benchmarks import recipe_search
from benchmarks.recipe_search import Trial, is_done, load_trials, runtime_params, select

EXPERIMENT = "transfusion_ad"  # conf/base/mlflow.yml


def test_the_shipped_trials_parse_and_name_known_parameters(project_root: Path) -> None:
    trials = load_trials()
    assert {"baseline", "cosine", "ema", "batch16", "opaque"} <= set(trials)
    parameters = yaml.safe_load((project_root / "conf/base/parameters_training.yml").read_text())
    for trial in trials.values():
        for key in trial.params:
            group, name = key.split(".", 1)
            assert group == "training" and name in parameters["training"], (trial.name, key)


def test_unknown_trials_are_refused_naming_them() -> None:
    with pytest.raises(SystemExit, match="Unknown trial\\(s\\) nope"):
        select(load_trials(), "baseline,nope")


def test_runtime_params_nest_like_kedro_params_and_give_each_run_its_folders() -> None:
    trial = Trial("t", {"training.epochs": 4, "training.lr": 1e-3})
    params = runtime_params(trial, 1, "root", "fryum", "visa")
    assert params["training"]["epochs"] == 4 and params["seed"] == 1
    assert params["run_suffix"] == f"/search/t-{trial.digest}/seed1"
    assert params["training"]["checkpoint_dir"].endswith(
        f"fryum/search/t-{trial.digest}/seed1/checkpoints"
    )
    other = runtime_params(trial, 2, "root", "fryum", "visa")
    assert other["run_suffix"] != params["run_suffix"]


def test_a_run_is_done_only_for_the_same_parameters_seed_and_commit() -> None:
    trial = Trial("t", {"training.epochs": 4})
    rows = [{"trial": "t", "seed": "0", "params_digest": trial.digest, "commit": "abc"}]
    assert is_done(rows, trial, 0, "abc")
    assert not is_done(rows, trial, 1, "abc")
    assert not is_done(rows, trial, 0, "def")
    assert not is_done(rows, Trial("t", {"training.epochs": 5}), 0, "abc")


@pytest.mark.slow
def test_a_search_writes_the_runs_metrics_and_resumes_instead_of_repeating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = copy_project(tmp_path / "project")
    uri = f"sqlite:///{project}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(project)
    trials_file = tmp_path / "trials.yml"
    trials_file.write_text(
        yaml.safe_dump(
            {
                "short": {
                    "about": "tiny cosine + EMA",
                    "params": {
                        "training.epochs": 2,
                        "training.lr_schedule": "cosine",
                        "training.warmup_steps": 2,
                        "training.ema_decay": 0.9,
                    },
                }
            }
        )
    )
    csv_path = tmp_path / "search.csv"
    argv = [
        "--project", str(project), "--env", "tiny", "--trials", "short", "--seeds", "0",
        "--data-root", "data/01_raw/sample", "--category", "fryum",
        "--trials-file", str(trials_file), "--csv", str(csv_path), "--threads", "1",
    ]  # fmt: skip
    assert recipe_search.main(argv) == 0
    [row] = list(csv.DictReader(csv_path.open()))
    trial = load_trials(trials_file)["short"]
    reports = project / "data/08_reporting/visa" / f"fryum/search/short-{trial.digest}/seed0"
    metrics = json.loads((reports / "metrics.json").read_text())
    for name in ("image_auroc", "pixel_auroc", "aupro"):
        assert float(row[name]) == pytest.approx(metrics[name], abs=1e-4)
    history = json.loads((reports / "training_history.json").read_text())
    assert (row["trial"], row["seed"], row["epochs"]) == ("short", "0", "2")
    assert int(row["steps"]) == len(history["step_losses"]) > 0
    assert row["resumed"] == "False" and row["within_budget"] == "True"
    bundle_config = metrics["model"]
    assert bundle_config["identity"]  # the evaluated model is this run's

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    child = client.get_run(row["run_id"])
    parent_id = child.data.tags["mlflow.parentRunId"]
    assert child.data.tags[recipe_search.TRIAL_TAG] == "short"
    assert child.data.params["training.lr_schedule"] == "cosine"
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(parent_id)] == [csv_path.name]
    assert len(client.search_runs([experiment])) == 2

    assert recipe_search.main(argv) == 0  # done already: nothing runs, nothing is added
    assert len(list(csv.DictReader(csv_path.open()))) == 1
    assert len(client.search_runs([experiment])) == 2


def test_the_report_gives_each_trial_the_mean_over_its_seeds() -> None:
    def row(trial: str, seed: int, image: float) -> dict[str, str]:
        values = {"image_auroc": image, "pixel_auroc": 0.9, "aupro": 0.8}
        times = {"wall_s": 600.0, "train_s": 480.0}
        return {
            "trial": trial,
            "seed": str(seed),
            **{k: str(v) for k, v in {**values, **times}.items()},
        }

    rows = [row("a", 0, 0.80), row("b", 0, 0.90), row("a", 1, 0.86)]
    lines = recipe_search.markdown_table(rows, {"a": Trial("a", {}, "first")}).splitlines()
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert cells == [
        "a", "0,1", "0.830 (0.800 / 0.860)", "0.900 (0.900 / 0.900)", "0.800 (0.800 / 0.800)",
        "10.0", "8.0", "first",
    ]  # fmt: skip
    assert lines[3].startswith("| b | 0 | 0.900 | 0.900 | 0.800 |")


def test_a_search_without_its_arguments_names_them(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        recipe_search.main(["--trials", "baseline"])
    assert "a search needs --data-root, --category" in capsys.readouterr().err
