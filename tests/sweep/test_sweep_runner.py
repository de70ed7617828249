"""Sweeps on a local Ray instance with 2 CPUs: two categories in parallel, a failing category,
``--only-failed``, ``--skip-done``; the summary table and the parent/child MLflow runs.

Each category is the quick recipe shrunk to one epoch at 32 px, so a sweep takes tens of seconds.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import ray
from mlflow import MlflowClient

from transfusion_ad.commands import main

pytestmark = pytest.mark.slow

SHRUNK = "training.epochs=1,image_size=32"
EXPERIMENT = "transfusion_ad"  # conf/base/mlflow.yml


def _children(pid: int) -> list[int]:
    """Every process descending from ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [child for child, parent in parents.items() if parent == current]
        found += kids
        frontier += kids
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance on 2 CPUs for the module; afterwards none of its processes survive.
    Children that existed before (e.g. another test's multiprocessing resource tracker) are not
    Ray's."""
    before = set(_children(os.getpid()))
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2)
    yield
    started = [pid for pid in _children(os.getpid()) if pid not in before]
    assert any("raylet" in _command(pid) for pid in started), "no raylet was found to check"
    ray.shutdown()
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.5)
    survivors = {pid: _command(pid) for pid in started if _running(pid)}
    assert not survivors, f"Ray processes outlived ray.shutdown(): {survivors}"


def sweep(project: Path, *args: str) -> int:
    """``transfusion-ad sweep`` on the project copy's folder data root, tracking into its own db."""
    return main(["sweep", "--project-path", str(project), "--dataset", "folder", *args])


def shrunk_sweep(project: Path, *args: str) -> int:
    """``sweep`` with the quick recipe shrunk to seconds (``SHRUNK``)."""
    return sweep(project, *args, "--env", "quick", "--params", shrunk_params(project))


def shrunk_params(project: Path) -> str:
    return f"{SHRUNK},data_root=roots,mlflow_tracking_uri=sqlite:///{project}/mlflow.db"


def reporting(project: Path) -> Path:
    return project / "data" / "08_reporting" / "folder"


def read_state(project: Path) -> dict:
    return json.loads((reporting(project) / "sweep_state.json").read_text())


def summary_dir(project: Path) -> Path:
    """The last sweep's own summary folder (summaries/<sweep id>/), as its state records it."""
    return Path(read_state(project)["summary_dir"])


def summary(project: Path) -> dict[str, dict[str, str]]:
    with (summary_dir(project) / "summary.csv").open() as handle:
        return {row["category"]: row for row in csv.DictReader(handle)}


def metrics_of(project: Path, category: str) -> dict:
    return json.loads((reporting(project) / category / "metrics.json").read_text())


def tracking(project: Path) -> tuple[MlflowClient, str]:
    client = MlflowClient(f"sqlite:///{project}/mlflow.db")
    return client, client.get_experiment_by_name(EXPERIMENT).experiment_id


def children_of(project: Path, parent_run_id: str) -> list:
    client, experiment = tracking(project)
    return client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )


@pytest.fixture(scope="module")
def swept(local_ray, sweep_project):
    """One sweep of fryum and small in parallel: (exit code, wall seconds)."""
    start = time.monotonic()
    code = shrunk_sweep(sweep_project, "--categories", "fryum,small")
    return code, time.monotonic() - start


def test_two_categories_run_in_parallel_into_one_summary(swept, sweep_project):
    code, seconds = swept
    print(f"two-category sweep: {seconds:.1f} s wall")
    assert code == 0
    state = read_state(sweep_project)
    assert {name: o["status"] for name, o in state["outcomes"].items()} == {
        "fryum": "succeeded",
        "small": "succeeded",
    }
    # The table is the runs' metrics in percent, with the mean row.
    table = summary(sweep_project)
    assert list(table) == ["fryum", "small", "mean"]
    for category in ("fryum", "small"):
        expected = 100 * metrics_of(sweep_project, category)["image_auroc"]
        assert float(table[category]["image_auroc"]) == pytest.approx(expected, abs=1e-4)
    mean = (float(table["fryum"]["aupro"]) + float(table["small"]["aupro"])) / 2
    assert float(table["mean"]["aupro"]) == pytest.approx(mean, abs=1e-3)
    markdown = (summary_dir(sweep_project) / "summary.md").read_text()
    assert "| fryum |" in markdown and "| small |" in markdown
    assert "Protocol: default" in markdown
    assert summary_dir(sweep_project) == reporting(sweep_project) / "summaries" / state["sweep_id"]
    # MLflow: a finished parent run holding the table; each category a finished child of it,
    # written concurrently to the same sqlite store.
    client, _ = tracking(sweep_project)
    parent = client.get_run(state["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["transfusion_ad.sweep_id"] == state["sweep_id"]
    assert parent.data.metrics["mean.aupro"] == pytest.approx(mean / 100, abs=1e-5)
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert {"summary/summary.csv", "summary/summary.md"} <= logged
    children = children_of(sweep_project, parent.info.run_id)
    assert sorted(run.info.run_name for run in children) == ["folder/fryum", "folder/small"]
    for run in children:
        category = run.info.run_name.split("/")[1]
        assert run.info.status == "FINISHED"
        assert run.info.run_id == state["outcomes"][category]["run_id"]
        assert run.data.tags["transfusion_ad.sweep_id"] == state["sweep_id"]
        assert run.data.metrics["image_auroc"] == pytest.approx(
            metrics_of(sweep_project, category)["image_auroc"]
        )
    # Parallel, not one after the other: each run started before the other ended.
    assert max(r.info.start_time for r in children) < min(r.info.end_time for r in children)


def test_skip_done_tabulates_existing_metrics_without_running(swept, sweep_project):
    earlier = summary_dir(sweep_project)
    earlier_table = (earlier / "summary.csv").read_bytes()
    written = {
        c: (reporting(sweep_project) / c / "metrics.json").stat().st_mtime_ns
        for c in ("fryum", "small")
    }
    code = shrunk_sweep(sweep_project, "--categories", "small,fryum", "--skip-done")
    assert code == 0
    state = read_state(sweep_project)
    assert {o["status"] for o in state["outcomes"].values()} == {"skipped"}
    for category, mtime in written.items():
        assert (reporting(sweep_project) / category / "metrics.json").stat().st_mtime_ns == mtime
    assert set(summary(sweep_project)) == {"fryum", "small", "mean"}
    assert children_of(sweep_project, state["parent_run_id"]) == []
    # Versioned: the new sweep wrote its own summary; the earlier one is untouched.
    assert summary_dir(sweep_project) != earlier
    assert (earlier / "summary.csv").read_bytes() == earlier_table


def test_a_failing_category_does_not_stop_the_other_and_only_failed_reruns_it(
    local_ray, sweep_project
):
    roots = sweep_project / "roots"
    shutil.copytree(roots / "small", roots / "broken")
    corrupt = sorted((roots / "broken" / "train" / "good").iterdir())[0]
    original = corrupt.read_bytes()
    corrupt.write_bytes(b"not an image")
    code = shrunk_sweep(sweep_project, "--categories", "small,broken")
    assert code == 1
    first = read_state(sweep_project)
    assert first["outcomes"]["small"]["status"] == "succeeded"
    assert first["outcomes"]["broken"]["status"] == "failed"
    assert corrupt.name in first["outcomes"]["broken"]["error"]
    assert list(summary(sweep_project)) == ["small", "mean"]
    assert corrupt.name in (summary_dir(sweep_project) / "summary.md").read_text()
    client, _ = tracking(sweep_project)
    assert client.get_run(first["parent_run_id"]).info.status == "FAILED"
    failed_run = client.get_run(first["outcomes"]["broken"]["run_id"])
    assert failed_run.info.status == "FAILED"

    # Repaired, only the failed category runs again (same env and params as the last sweep).
    corrupt.write_bytes(original)
    assert sweep(sweep_project, "--only-failed") == 0
    second = read_state(sweep_project)
    assert {n: o["status"] for n, o in second["outcomes"].items()} == {
        "small": "succeeded",
        "broken": "succeeded",
    }
    assert second["outcomes"]["small"]["run_id"] == first["outcomes"]["small"]["run_id"]
    assert second["env"] == "quick" and second["params"] == first["params"]
    reruns = children_of(sweep_project, second["parent_run_id"])
    assert [run.info.run_name for run in reruns] == ["folder/broken"]
    assert list(summary(sweep_project)) == ["broken", "small", "mean"]


def test_gpus_that_the_instance_lacks_are_refused_before_anything_runs(local_ray, sweep_project):
    code = sweep(
        sweep_project,
        "--categories",
        "small",
        "--gpus-per-task",
        "1",
        "--env",
        "quick",
        "--params",
        shrunk_params(sweep_project),
        "--output-dir",
        "data/gpu_check",
    )
    assert code == 2
    assert not (sweep_project / "data" / "gpu_check" / "sweep_state.json").exists()


def test_seeds_are_tasks_of_their_own_and_the_summary_gives_mean_and_std(local_ray, sweep_project):
    assert (
        sweep(sweep_project, "--categories", "small", "--seeds", "0,1", "--params", "seed=1") == 2
    )
    code = shrunk_sweep(sweep_project, "--categories", "small", "--seeds", "0,1")
    assert code == 0
    state = read_state(sweep_project)
    assert state["seeds"] == [0, 1]
    assert {n: o["status"] for n, o in state["outcomes"].items()} == {
        "small/seed0": "succeeded",
        "small/seed1": "succeeded",
    }
    # Each seed in its own folders, from its own model.
    runs = {seed: metrics_of(sweep_project, f"small/seed{seed}") for seed in (0, 1)}
    assert runs[0]["model"]["identity"] != runs[1]["model"]["identity"]
    values = [100 * runs[seed]["image_auroc"] for seed in (0, 1)]
    table = summary(sweep_project)
    assert list(table) == ["small", "mean"]
    assert table["small"]["seeds"] == "2"
    assert float(table["small"]["image_auroc"]) == pytest.approx(sum(values) / 2, abs=1e-4)
    spread = abs(values[0] - values[1]) / 2**0.5  # the sample std of two values
    assert float(table["small"]["image_auroc_std"]) == pytest.approx(spread, abs=1e-4)
    assert float(table["mean"]["image_auroc_std"]) == pytest.approx(spread, abs=1e-4)
    assert (
        f"{sum(values) / 2:.1f} ± {spread:.1f}"
        in (summary_dir(sweep_project) / "summary.md").read_text()
    )
    # MLflow: one child run per seed, tagged; the parent holds the table and the spread.
    client, _ = tracking(sweep_project)
    children = children_of(sweep_project, state["parent_run_id"])
    assert sorted(run.info.run_name for run in children) == [
        "folder/small/seed0",
        "folder/small/seed1",
    ]
    assert sorted(run.data.tags["transfusion_ad.seed"] for run in children) == ["0", "1"]
    parent = client.get_run(state["parent_run_id"])
    assert parent.data.params["seeds"] == "0,1"
    assert parent.data.metrics["std.image_auroc"] == pytest.approx(spread / 100, abs=1e-6)
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert "summary/summary_table.json" in logged
