"""Pipeline fixtures: the real conf (quick environment) shrunk to a seconds-long recipe, and a
catalog of MemoryDatasets that the stages fill one after another."""

from __future__ import annotations

from typing import Any

import pytest
from kedro.framework.startup import bootstrap_project
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from support import TINY_RUNTIME, KeptMemoryDataset

from transfusion_ad.conf_recipes import project_parameters
from transfusion_ad.core.identity import flatten
from transfusion_ad.data import index_category
from transfusion_ad.pipeline_registry import register_pipelines
from transfusion_ad.validation import nest_params

# The tests' tiny recipe (support.TINY_RUNTIME), one epoch, never resumed.
TINY = {**flatten(TINY_RUNTIME), "training.epochs": 1, "training.resume": False}


def load_parameters(project_root, overrides: dict[str, Any]) -> dict[str, Any]:
    """The parameters a `kedro run --env quick --params ...` would see."""
    return project_parameters(project_root, "quick", overrides)


@pytest.fixture(scope="session")
def tiny_parameters(project_root, tmp_path_factory) -> dict[str, Any]:
    checkpoints = tmp_path_factory.mktemp("checkpoints")
    overrides = nest_params({**TINY, "training.checkpoint_dir": str(checkpoints)})
    return load_parameters(project_root, overrides)


def _catalog(parameters: dict[str, Any], sample_root, outputs: set[str]) -> DataCatalog:
    catalog = DataCatalog({name: KeptMemoryDataset(copy_mode="assign") for name in outputs})
    catalog["category_index"] = index_category(sample_root, "fryum")
    catalog["parameters"] = parameters

    def add(prefix: str, value: Any) -> None:
        catalog[f"params:{prefix}"] = value
        if isinstance(value, dict):
            for key, inner in value.items():
                add(f"{prefix}.{key}", inner)

    for key, value in parameters.items():
        add(key, value)
    return catalog


@pytest.fixture(scope="session")
def staged_catalog(tiny_parameters, sample_root, project_root) -> DataCatalog:
    """Run the five stages one after another, each alone, on one catalog of MemoryDatasets."""
    bootstrap_project(project_root)
    pipelines = register_pipelines()
    catalog = _catalog(tiny_parameters, sample_root, pipelines["train_eval"].all_outputs())
    for stage in ("data_ingestion", "anomaly_synthesis", "training", "inference", "evaluation"):
        SequentialRunner().run(pipelines[stage], catalog)
    return catalog


@pytest.fixture(scope="session")
def paper_catalog(project_root, sample_root, tmp_path_factory) -> DataCatalog:
    """train_eval under the paper protocol (``--params protocol=paper``), tiny recipe."""
    checkpoints = tmp_path_factory.mktemp("paper_checkpoints")
    overrides = nest_params(
        {**TINY, "training.checkpoint_dir": str(checkpoints), "protocol": "paper"}
    )
    parameters = load_parameters(project_root, overrides)
    bootstrap_project(project_root)
    pipeline = register_pipelines()["train_eval"]
    catalog = _catalog(parameters, sample_root, pipeline.all_outputs())
    SequentialRunner().run(pipeline, catalog)
    return catalog
