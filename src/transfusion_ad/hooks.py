"""Project hooks: validate parameters before any work; log chosen outputs as MLflow artifacts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node

from transfusion_ad.validation import validate_parameters

logger = logging.getLogger(__name__)


class ParameterValidationHook:
    """Stop a run before its first node when a parameter breaks a rule."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        validate_parameters(context.params)


class MlflowArtifactHook:
    """After a dataset with ``metadata: {mlflow_artifact: <folder>}`` is saved, log its file(s).

    Done here rather than with kedro-mlflow's MlflowArtifactDataset, which cannot wrap a
    versioned dataset under Kedro 1.x's lazily built catalog (its save version differs).
    """

    def __init__(self) -> None:
        self._catalog: Any = None

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        self._catalog = catalog

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
