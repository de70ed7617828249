"""Run a sweep: resolve the categories, skip or re-run as asked, one Ray task each, then the table.

Why Ray: it places each task on free CPUs or GPUs of one machine or a cluster, sets
CUDA_VISIBLE_DEVICES per task, and reports a crashed worker as an error instead of hanging.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfusion_ad.reporting.results_table import Row
from transfusion_ad.sweep.categories import resolve_categories
from transfusion_ad.sweep.errors import SweepError
from transfusion_ad.sweep.project import KedroTarget, dataset_and_root
from transfusion_ad.sweep.state import (
    DONE,
    FAILED,
    PENDING,
    SKIPPED,
    STATE_FILE,
    SUCCEEDED,
    CategoryOutcome,
    SweepState,
    parse_task_name,
    task_name,
)
from transfusion_ad.sweep.summary import (
    SUMMARIES_DIR,
    protocols,
    seed_summary_rows,
    summary_rows,
    write_summary,
)
from transfusion_ad.sweep.task import CategoryResult, CategoryTask, run_category
from transfusion_ad.sweep.tracking import finish_parent_run, start_parent_run

logger = logging.getLogger(__name__)

# Environment variables the driver hands to every task (workers of a cluster do not inherit it).
FORWARDED_ENV = ("KEDRO_DISABLE_TELEMETRY", "DO_NOT_TRACK", "MLFLOW_TRACKING_URI")
REPORTING_DIR = Path("data/08_reporting")


@dataclass(frozen=True)
class SweepConfig:
    """One sweep's settings, as the ``transfusion-ad sweep`` options give them.

    ``categories`` is ``all`` or ``a,b,c``; it is None exactly when ``only_failed`` re-runs the
    unfinished tasks of the last sweep, whose ``env``, ``params`` and ``seeds`` are then reused
    unless given. ``seeds`` makes every (category, seed) its own task, with its own outputs.
    ``dataset`` None is the environment's default. ``num_cpus``/``num_gpus`` size a local
    Ray instance started here; ``address`` joins a running cluster instead.
    """

    project_path: Path
    categories: str | None = None
    dataset: str | None = None
    env: str | None = None
    params: dict[str, Any] | None = None
    gpus_per_task: float = 0.0
    cpus_per_task: float = 1.0
    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    dashboard: bool = False
    skip_done: bool = False
    only_failed: bool = False
    output_dir: Path | None = None
    max_retries: int = 1  # Ray re-runs a task whose worker or node died (not a Python error)
    seeds: tuple[int, ...] | None = None


def run_sweep(config: SweepConfig) -> SweepState:
    """Run the sweep; return its state (also in ``<output_dir>/sweep_state.json``).

    A failing task never stops the others. After the tasks, this sweep's own
    ``summaries/<sweep id>/summary.{csv,md}`` hold the table of every task of the sweep that has
    metrics (mean ± std over seeds when it has seeds); the parent MLflow run holds it too. A new
    sweep never overwrites an earlier sweep's summary.
    Relative paths in the configuration (a sqlite tracking URI, data roots) are the project's,
    as with ``kedro run`` in the project root, for this process and every worker alike.
    """
    _check_config(config)
    project_path = config.project_path.resolve()
    with _working_directory(project_path):
        return _sweep(config, project_path)


@contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _sweep(config: SweepConfig, project_path: Path) -> SweepState:
    chosen = {"dataset": config.dataset} if config.dataset else {}
    probe = KedroTarget(project_path, config.env, {**(config.params or {}), **chosen})
    dataset, data_root = dataset_and_root(probe)
    output_dir = project_path / (config.output_dir or REPORTING_DIR / dataset)
    state_path = output_dir / STATE_FILE
    previous = SweepState.load(state_path)
    if config.only_failed:
        if previous is None:
            raise SweepError(
                f"--only-failed: no previous sweep of {dataset!r} (no '{state_path}'). "
                "Run a sweep with --categories first."
            )
        tasks = previous.unfinished()
        if not tasks:
            logger.info("Nothing to re-run: every task of the last sweep of %s is done.", dataset)
            return previous
        env = config.env if config.env is not None else previous.env
        params = config.params if config.params is not None else previous.params
        seeds = previous.seeds
        outcomes = dict(previous.outcomes)
    else:
        categories = resolve_categories(config.categories or "", dataset, data_root)
        seeds = None if config.seeds is None else list(config.seeds)
        tasks = [task_name(c, seed) for c in categories for seed in (seeds or [None])]
        env, params, outcomes = config.env, dict(config.params or {}), {}
    state = SweepState(_new_sweep_id(), dataset, env, params, outcomes=outcomes, seeds=seeds)
    target = KedroTarget(project_path, env, _task_params(params, dataset, config.gpus_per_task))
    metrics = _skip_done(target, tasks, state) if config.skip_done else {}
    todo = [name for name in tasks if name not in metrics]
    with _ray(config) if todo else nullcontext() as ray:
        parent = start_parent_run(target, state, tasks)
        state.parent_run_id = parent.run_id
        try:
            for name in todo:
                state.outcomes[name] = CategoryOutcome(PENDING)
            state.save(state_path)
            if todo:
                _run_tasks(ray, config, target, state, todo, metrics, state_path)
        finally:
            state.save(state_path)
            summary_dir = output_dir / SUMMARIES_DIR / state.sweep_id
            rows, files = _write_table(target, state, metrics, summary_dir)
            state.summary_dir = str(summary_dir) if rows else None
            state.save(state_path)
            finish_parent_run(parent, state, rows, [*files, state_path])
    return state


def _run_tasks(
    ray: Any,
    config: SweepConfig,
    target: KedroTarget,
    state: SweepState,
    todo: Sequence[str],
    metrics: dict[str, dict[str, Any]],
    state_path: Path,
) -> None:
    """One Ray task per task name of ``todo``; record each outcome (and metrics) as it arrives."""
    threads = max(1, int(config.cpus_per_task))
    remote = ray.remote(run_category).options(
        num_cpus=config.cpus_per_task,
        num_gpus=config.gpus_per_task,
        max_retries=config.max_retries,
    )
    pending = {}
    for name in todo:
        category, seed = parse_task_name(name)
        task = CategoryTask(target, category, state.sweep_id, state.parent_run_id, threads, seed)
        pending[remote.remote(task)] = task
    try:
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ready)
            try:
                result = ray.get(ready)
            except ray.exceptions.RayError as error:
                result = CategoryResult(
                    task.category,
                    False,
                    None,
                    f"{type(error).__name__}: {error}",
                    seed=task.seed,
                )
            _record(result, state, metrics, state_path, len(todo))
    finally:
        for ref in pending:  # interrupted: nothing keeps running for a sweep that has ended
            ray.cancel(ref, force=True)


def _record(
    result: CategoryResult,
    state: SweepState,
    metrics: dict[str, dict[str, Any]],
    state_path: Path,
    total: int,
) -> None:
    status = SUCCEEDED if result.succeeded else FAILED
    state.outcomes[result.name] = CategoryOutcome(
        status, result.error, result.seconds, result.run_id
    )
    if result.metrics is not None:
        metrics[result.name] = result.metrics
    state.save(state_path)
    finished = total - len(state.categories(PENDING))
    logger.info("Task %s %s (%d of %d)", result.name, status, finished, total)


def _check_config(config: SweepConfig) -> None:
    if config.only_failed == (config.categories is not None):
        raise SweepError("Give either --categories (all or a,b,c) or --only-failed, not both.")
    if config.gpus_per_task < 0 or config.cpus_per_task <= 0:
        raise SweepError(
            f"--gpus-per-task {config.gpus_per_task} / --cpus-per-task {config.cpus_per_task}: "
            "GPUs must be >= 0 and CPUs > 0 per task."
        )
    if config.seeds is not None and (not config.seeds or "seed" in (config.params or {})):
        raise SweepError(
            "--seeds takes a comma-separated list of integers (e.g. 0,1,2) and sets each task's "
            "seed itself: leave seed out of --params."
        )
    if config.address and (config.num_cpus is not None or config.num_gpus is not None):
        raise SweepError(
            "--num-cpus/--num-gpus size a local Ray instance; a cluster (--address) has its own."
        )


def _new_sweep_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def _task_params(params: dict[str, Any], dataset: str, gpus_per_task: float) -> dict[str, Any]:
    """The runtime parameters of every task; a CPU task runs on the CPU even on a GPU machine."""
    task_params = {**params, "dataset": dataset}
    if gpus_per_task == 0:
        task_params.setdefault("device", "cpu")
    return task_params


def _skip_done(
    target: KedroTarget, tasks: Sequence[str], state: SweepState
) -> dict[str, dict[str, Any]]:
    """Metrics of the tasks that already have them, each marked skipped in ``state``."""
    done = {}
    for name in tasks:
        metrics = target.stored_metrics(*parse_task_name(name))
        if metrics is not None:
            done[name] = metrics
            state.outcomes[name] = CategoryOutcome(SKIPPED)
    if done:
        logger.info("Skipping %d task(s) with metrics: %s", len(done), ", ".join(done))
    return done


def _write_table(
    target: KedroTarget, state: SweepState, metrics: dict[str, dict[str, Any]], output_dir: Path
) -> tuple[list[Row] | None, list[Path]]:
    """The summary table of every done task (earlier sweeps' included) in ``output_dir``, this
    sweep's own folder; no table if none."""
    for name in state.categories(SUCCEEDED) + state.categories(SKIPPED):
        if name not in metrics:
            stored = target.stored_metrics(*parse_task_name(name))
            if stored is not None:
                metrics[name] = stored
    done = {
        name: metrics[name]
        for name, outcome in state.outcomes.items()
        if outcome.status in DONE and name in metrics
    }
    failed = {name: state.outcomes[name].error or "" for name in state.categories(FAILED)}
    if not done:
        logger.warning("No task has metrics, so no summary table was written.")
        return None, []
    rows = (
        seed_summary_rows(done, state.dataset) if state.seeds else summary_rows(done, state.dataset)
    )
    csv_path, md_path = write_summary(
        rows, state.dataset, failed, output_dir, protocols(done.values())
    )
    logger.info("Summary table: %s and %s", csv_path, md_path)
    return rows, [csv_path, md_path]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise SweepError(
            "A sweep runs on Ray, which is not installed. Install the extra: "
            "pip install -e '.[distributed]' (or pip install 'ray[default]>=2.9')."
        ) from error
    return ray


@contextmanager
def _ray(config: SweepConfig) -> Iterator[Any]:
    """The Ray module, connected: to the instance already initialised in this process, else to
    the cluster at ``config.address``, else to a local instance started here (and shut down on
    exit; what was not started here is left running).
    """
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        local = {} if config.address else {"num_cpus": config.num_cpus, "num_gpus": config.num_gpus}
        env_vars = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        ray.init(
            address=config.address,
            include_dashboard=config.dashboard,
            runtime_env={"env_vars": env_vars},
            **local,
        )
    try:
        _check_resources(ray.cluster_resources(), config, strict=not config.address)
        yield ray
    finally:
        if started_here:
            ray.shutdown()


def _check_resources(available: dict[str, float], config: SweepConfig, strict: bool) -> None:
    """Refuse tasks that can never be placed on a local instance (they would wait forever).

    On a cluster (``strict`` False) it only warns: an autoscaler may add the nodes later.
    """
    for resource, per_task, option in (
        ("CPU", config.cpus_per_task, "--cpus-per-task"),
        ("GPU", config.gpus_per_task, "--gpus-per-task"),
    ):
        have = available.get(resource, 0.0)
        if per_task > have:
            message = (
                f"{option} {per_task:g} but Ray has {have:g} {resource}(s) in all, so no task "
                f"could start. Lower {option}"
                + (" (0 runs on the CPU)" if resource == "GPU" else "")
                + " or add resources."
            )
            if strict:
                raise SweepError(message)
            logger.warning(message)
