"""Sweeps that cannot start say why (exit code 2) before anything runs or is recorded."""

from __future__ import annotations

import sys

import pytest

from transfusion_ad.commands import main
from transfusion_ad.sweep import CategoryOutcome, SweepState


@pytest.fixture
def sweep(sweep_project):
    """Run ``transfusion-ad sweep`` on the project copy, tracking into the copy's own store."""
    uri = f"sqlite:///{sweep_project}/mlflow.db"

    def run(*args: str, params: str = "") -> int:
        tracked = f"mlflow_tracking_uri={uri}" + (f",{params}" if params else "")
        return main(
            ["sweep", "--project-path", str(sweep_project), "--env", "quick", *args]
            + ["--params", tracked]
        )

    return run


def reports(sweep_project):
    return sweep_project / "data" / "08_reporting"


def test_only_failed_without_a_previous_sweep_says_so(sweep, sweep_project, capsys):
    assert sweep("--dataset", "mvtec_ad", "--only-failed") == 2
    assert "no previous sweep of 'mvtec_ad'" in capsys.readouterr().err


def test_only_failed_with_nothing_left_runs_nothing(sweep, sweep_project):
    path = reports(sweep_project) / "visa" / "sweep_state.json"
    done = SweepState("s1", "visa", "quick", {}, "p1", {"fryum": CategoryOutcome("succeeded")})
    done.save(path)
    assert sweep("--dataset", "visa", "--only-failed") == 0
    assert SweepState.load(path) == done


def test_all_folder_categories_of_a_missing_root_names_it(sweep, capsys):
    code = sweep("--dataset", "folder", "--categories", "all", params="data_root=nowhere")
    assert code == 2
    assert "nowhere' does not exist" in capsys.readouterr().err


def test_an_invalid_parameter_is_refused_by_the_projects_validation(sweep, capsys):
    assert sweep("--categories", "fryum", params="image_size=33") == 2
    assert "image_size" in capsys.readouterr().err


def test_local_instance_sizes_do_not_go_with_a_cluster_address(sweep, capsys):
    assert sweep("--categories", "fryum", "--address", "auto", "--num-cpus", "2") == 2
    assert "--address" in capsys.readouterr().err


def test_without_ray_the_error_says_how_to_install_it(sweep, sweep_project, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert sweep("--categories", "fryum", "--output-dir", "data/no_ray") == 2
    assert ".[distributed]" in capsys.readouterr().err
    assert not (sweep_project / "data" / "no_ray").exists()
