"""Project pipelines: each folder under pipelines/, and train_eval (their sum, the default)."""

from __future__ import annotations

import importlib

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

TRAIN_EVAL_STAGES = ("data_ingestion", "anomaly_synthesis", "training", "inference", "evaluation")


def _stage(name: str, found: dict[str, Pipeline]) -> Pipeline:
    """A stage found by find_pipelines, or imported directly.

    Kedro only discovers the pipelines named on the command line, so `--pipeline=train_eval`
    finds no folder of that name and the stages are imported here.
    """
    if name in found:
        return found[name]
    return importlib.import_module(f"transfusion_ad.pipelines.{name}").create_pipeline()


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline found; ``train_eval`` chains the five stages and is the default."""
    pipelines = find_pipelines(raise_errors=True)
    train_eval = sum((_stage(name, pipelines) for name in TRAIN_EVAL_STAGES), Pipeline([]))
    pipelines["train_eval"] = train_eval
    pipelines["__default__"] = train_eval
    return pipelines
