"""Recipe search (issue "accuracy per compute"): train and evaluate named recipes of the small
CPU recipe on one category, each (trial, seed) a real ``train_eval`` run of the project, and
write one CSV row per run, so that recipes are compared at the same wall-clock budget.

    .venv/bin/python benchmarks/recipe_search.py --trials baseline,cosine --seeds 0,1 \\
        --data-root ../shared/data/visa_fryum --category fryum --budget-minutes 10

Trials are named in ``benchmarks/recipe_search.yml`` (runtime parameters on top of ``--env``,
``quick`` by default). Each run is a child MLflow run of one parent run per invocation (tagged
with the trial and seed) and runs in a fresh process, one at a time, with every core. Its
outputs and checkpoints go to folders of their own, named by the trial and a digest of its
parameters, so an interrupted search resumes: a (trial, seed) already in the CSV with the same
parameters and code commit is skipped, and an interrupted run continues from its checkpoint
(its row then says ``resumed``). The wall time is the whole ``train_eval`` session (reading the
images, training, thresholds and the evaluation of every test image); ``within_budget`` compares
it with ``--budget-minutes``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness import cpu_extensions  # noqa: E402
from transfusion_ad.validation import nest_params  # noqa: E402

TRIALS_FILE = ROOT / "benchmarks" / "recipe_search.yml"
SEARCH_TAG = "transfusion_ad.recipe_search"
TRIAL_TAG = "transfusion_ad.trial"
SEED_TAG = "transfusion_ad.seed"
COLUMNS = (
    "trial",
    "seed",
    "params_digest",
    "commit",
    "image_auroc",
    "pixel_auroc",
    "aupro",
    "wall_s",
    "train_s",
    "steps",
    "epochs",
    "within_budget",
    "resumed",
    "cpu",
    "run_id",
    "params",
)


@dataclass(frozen=True)
class Trial:
    """A named recipe: runtime parameters on top of the environment, and why it is tried."""

    name: str
    params: Mapping[str, Any]
    about: str = ""

    @property
    def digest(self) -> str:
        """Short hash of the parameters: a changed trial is a new trial."""
        text = json.dumps(dict(self.params), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]


def load_trials(path: Path = TRIALS_FILE) -> dict[str, Trial]:
    """The trials of ``path``: ``name: {about: ..., params: {dotted.key: value}}``."""
    raw = yaml.safe_load(path.read_text()) or {}
    trials = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("params", {}), dict):
            raise ValueError(f"{path}: trial '{name}' needs a mapping with a 'params' mapping.")
        trials[name] = Trial(name, dict(spec.get("params") or {}), str(spec.get("about", "")))
    return trials


def select(trials: Mapping[str, Trial], names: str) -> list[Trial]:
    """The trials named in a comma-separated list, in its order; an unknown name is refused."""
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in trials]
    if unknown:
        raise SystemExit(
            f"Unknown trial(s) {', '.join(unknown)}; {TRIALS_FILE.name} has {', '.join(trials)}."
        )
    return [trials[name] for name in chosen]


def run_folder(trial: Trial, seed: int) -> str:
    """The outputs' suffix of one run (catalog ``run_suffix``) and its checkpoint folder's tail."""
    return f"/search/{trial.name}-{trial.digest}/seed{seed}"


def runtime_params(
    trial: Trial, seed: int, data_root: str, category: str, dataset: str
) -> dict[str, Any]:
    """The ``--params`` of one run: the category, the seed, its own folders, then the trial."""
    suffix = run_folder(trial, seed)
    flat = {
        "dataset": dataset,
        "data_root": data_root,
        "category": category,
        "seed": seed,
        "run_suffix": suffix,
        "training.checkpoint_dir": f"data/06_models/{dataset}/{category}{suffix}/checkpoints",
        "training.progress": False,
        **trial.params,
    }
    return nest_params(flat)


def done_rows(path: Path) -> list[dict[str, str]]:
    """The rows already written (none when the file does not exist)."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def is_done(rows: Sequence[Mapping[str, str]], trial: Trial, seed: int, commit: str) -> bool:
    """Whether ``rows`` hold this run of the same parameters at the same code commit."""
    return any(
        row["trial"] == trial.name
        and row["seed"] == str(seed)
        and row["params_digest"] == trial.digest
        and row["commit"] == commit
        for row in rows
    )


def append_row(path: Path, row: Mapping[str, Any]) -> None:
    """Add one row, with the header when the file is new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({column: row.get(column, "") for column in COLUMNS})


def markdown_table(rows: Sequence[Mapping[str, str]], trials: Mapping[str, Trial]) -> str:
    """One line per trial, in the CSV's order: the mean of each metric over its seeds (each
    seed's value beside it), the mean wall and training minutes, and what the trial changes."""
    order = list(dict.fromkeys(row["trial"] for row in rows))
    lines = [
        "| trial | seeds | image AUROC | pixel AUROC | AUPRO | wall min | train min | what |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in order:
        runs = [row for row in rows if row["trial"] == name]

        def cell(key: str, runs: list[Mapping[str, str]] = runs) -> str:
            values = [float(row[key]) for row in runs]
            mean = f"{sum(values) / len(values):.3f}"
            if len(values) == 1:
                return mean
            return f"{mean} ({' / '.join(f'{v:.3f}' for v in values)})"

        def minutes(key: str, runs: list[Mapping[str, str]] = runs) -> str:
            return f"{sum(float(row[key]) for row in runs) / len(runs) / 60:.1f}"

        seeds = ",".join(row["seed"] for row in runs)
        about = trials[name].about if name in trials else ""
        lines.append(
            f"| {name} | {seeds} | {cell('image_auroc')} | {cell('pixel_auroc')} | "
            f"{cell('aupro')} | {minutes('wall_s')} | {minutes('train_s')} | {about} |"
        )
    return "\n".join(lines)


def code_commit() -> str:
    """The project's commit, with ``+dirty`` when the working tree has changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def _run_in_fresh_process(task: Any) -> Any:
    """One ``train_eval`` run in a worker process (fresh interpreter: no state between runs)."""
    from transfusion_ad.core.device import prepare_cpu
    from transfusion_ad.sweep.task import run_category

    prepare_cpu()
    return run_category(task)


def _training_summary(project: Path, params: Mapping[str, Any]) -> tuple[float, int, int]:
    """(training seconds, optimiser steps, epochs) from the run's training_history.json."""
    dataset, category, suffix = params["dataset"], params["category"], params["run_suffix"]
    reports = project / "data" / "08_reporting" / dataset
    path = reports / f"{category}{suffix}" / "training_history.json"
    history = json.loads(path.read_text())
    seconds = sum(result["seconds"] for result in history["results"])
    return seconds, len(history["step_losses"]), len(history["results"])


def _has_checkpoints(project: Path, params: Mapping[str, Any]) -> bool:
    folder = project / params["training"]["checkpoint_dir"]
    return folder.exists() and any(folder.rglob("*.pt"))


def search(args: argparse.Namespace) -> Path:
    """Run every selected (trial, seed) not yet in the CSV; return the CSV's path."""
    from mlflow import MlflowClient

    from transfusion_ad.sweep.project import KedroTarget
    from transfusion_ad.sweep.task import CategoryTask

    trials = select(load_trials(args.trials_file), args.trials)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    commit = code_commit()
    csv_path = Path(args.csv)
    rows = done_rows(csv_path)
    todo = [(t, s) for t in trials for s in seeds if not is_done(rows, t, s, commit)]
    print(f"{len(todo)} run(s) to do, {len(trials) * len(seeds) - len(todo)} already in {csv_path}")
    if not todo:
        return csv_path
    project = args.project.resolve()
    base = KedroTarget(project, args.env, {"dataset": args.dataset})
    with base.session() as session:
        mlflow_config = session.load_context().mlflow
    client = MlflowClient(mlflow_config.server.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(mlflow_config.tracking.experiment.name)
    search_id = time.strftime("%Y%m%dT%H%M%S")
    parent = client.create_run(
        experiment.experiment_id,
        run_name=f"{args.dataset}/{args.category}/recipe_search",
        tags={SEARCH_TAG: search_id},
    )
    parent_id = parent.info.run_id
    for key, value in {
        "category": args.category,
        "env": args.env,
        "trials": args.trials,
        "seeds": args.seeds,
        "commit": commit,
        "budget_minutes": args.budget_minutes,
    }.items():
        client.log_param(parent_id, key, value)
    cpu = cpu_extensions()
    context = multiprocessing.get_context("spawn")
    failed = 0
    for trial, seed in todo:
        params = runtime_params(trial, seed, args.data_root, args.category, args.dataset)
        resumed = _has_checkpoints(project, params)
        target = KedroTarget(project, args.env, params)
        task = CategoryTask(target, args.category, search_id, parent_id, args.threads)
        print(f"[{trial.name} seed {seed}] {trial.about}", flush=True)
        started = time.monotonic()
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            result = pool.submit(_run_in_fresh_process, task).result()
        wall = time.monotonic() - started
        if not result.succeeded:
            failed += 1
            print(f"[{trial.name} seed {seed}] failed: {result.error}", flush=True)
            continue
        client.set_tag(result.run_id, TRIAL_TAG, trial.name)
        client.set_tag(result.run_id, SEED_TAG, str(seed))
        train_s, steps, epochs = _training_summary(project, params)
        metrics = result.metrics
        row = {
            "trial": trial.name,
            "seed": seed,
            "params_digest": trial.digest,
            "commit": commit,
            **{
                name: round(float(metrics[name]), 4)
                for name in ("image_auroc", "pixel_auroc", "aupro")
            },
            "wall_s": round(wall, 1),
            "train_s": round(train_s, 1),
            "steps": steps,
            "epochs": epochs,
            "within_budget": wall <= args.budget_minutes * 60,
            "resumed": resumed,
            "cpu": cpu,
            "run_id": result.run_id,
            "params": json.dumps(dict(trial.params), sort_keys=True),
        }
        append_row(csv_path, row)
        print(
            f"[{trial.name} seed {seed}] image {row['image_auroc']:.3f} pixel "
            f"{row['pixel_auroc']:.3f} aupro {row['aupro']:.3f} in {wall / 60:.1f} min",
            flush=True,
        )
    client.log_artifact(parent_id, str(csv_path))
    client.set_terminated(parent_id, "FAILED" if failed else "FINISHED")
    return csv_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", help="comma-separated names from the trials file")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--data-root", help="the dataset root (MVTec layout)")
    parser.add_argument("--category")
    parser.add_argument("--dataset", default="visa")
    parser.add_argument("--env", default="quick", help="Kedro environment (default quick)")
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all)"
    )
    parser.add_argument("--trials-file", type=Path, default=TRIALS_FILE)
    parser.add_argument("--project", type=Path, default=ROOT, help="the Kedro project to run")
    parser.add_argument(
        "--csv", default=str(ROOT / "benchmarks" / "recipe_search.csv"), help="rows go here"
    )
    parser.add_argument(
        "--report", action="store_true", help="print the CSV as a Markdown table; run nothing"
    )
    args = parser.parse_args(argv)
    if args.report:
        print(markdown_table(done_rows(Path(args.csv)), load_trials(args.trials_file)))
        return 0
    missing = [
        f"--{name}"
        for name in ("trials", "data-root", "category")
        if not getattr(args, name.replace("-", "_"))
    ]
    if missing:
        parser.error(f"a search needs {', '.join(missing)} (or --report to print the table)")
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    search(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
