"""Project hooks: validate parameters before any work; make the CPU setting once; refuse a model
with thresholds that were not calibrated for it; log chosen outputs as MLflow artifacts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node

from transfusion_ad.core.device import prepare_cpu
from transfusion_ad.core.identity import check_model_binding
from transfusion_ad.validation import check_parameter_keys, validate_parameters

logger = logging.getLogger(__name__)


class ParameterValidationHook:
    """Stop a run before its first node when a parameter breaks a rule."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        loader = context.config_loader
        run_env = loader.env or loader.default_run_env
        envs = [run_env] if run_env and run_env != loader.base_env else []
        check_parameter_keys(Path(loader.conf_source), envs, loader.runtime_params, loader.base_env)
        validate_parameters(context.params)


class CpuSettingsHook:
    """Every pipeline runs with the process-wide CPU setting (core.device.prepare_cpu)."""

    @hook_impl
    def before_pipeline_run(self) -> None:
        prepare_cpu()


class _CatalogHook:
    """Keeps the run's catalog, for hooks that look up a dataset's path or version."""

    def __init__(self) -> None:
        self._catalog: Any = None

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        self._catalog = catalog


class ModelThresholdsPairHook(_CatalogHook):
    """Before a node that takes both the model and thresholds, prove that they belong together
    (the thresholds record the weights digest of the model they were calibrated for)."""

    @hook_impl
    def before_node_run(self, inputs: dict[str, Any]) -> None:
        if "model_checkpoint" not in inputs or "thresholds" not in inputs:
            return
        check_model_binding(
            inputs["model_checkpoint"],
            inputs["thresholds"],
            model_version=self._load_version("model_checkpoint"),
            thresholds_version=self._load_version("thresholds"),
        )

    def _load_version(self, name: str) -> str | None:
        """The version a versioned dataset loads (for the message), or None if unknown."""
        try:
            return self._catalog.get(name).resolve_load_version()
        except Exception:  # a memory dataset, an unversioned one, or no catalog: no version
            return None


class MlflowArtifactHook(_CatalogHook):
    """After a dataset with ``metadata: {mlflow_artifact: <folder>}`` is saved, log its file(s).

    Done here rather than with kedro-mlflow's MlflowArtifactDataset, which cannot wrap a
    versioned dataset under Kedro 1.x's lazily built catalog (its save version differs).
    """

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Node) -> None:
        if self._catalog is None or mlflow.active_run() is None:
            return
        dataset = self._catalog.get(dataset_name)
        folder = (getattr(dataset, "metadata", None) or {}).get("mlflow_artifact")
        if folder is None:
            return
        path = Path(str(_saved_path(dataset)))
        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path=folder)
        elif path.is_file():
            mlflow.log_artifact(str(path), artifact_path=folder)
        else:
            logger.warning("Nothing to log to MLflow for '%s' at %s.", dataset_name, path)


def _saved_path(dataset: Any) -> Any:
    """Where the dataset just wrote: its save version's path when versioned."""
    if getattr(dataset, "_version", None) is not None:
        return dataset._get_versioned_path(dataset.resolve_save_version())
    return dataset._filepath
