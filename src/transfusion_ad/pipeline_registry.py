"""Project pipelines: each folder under pipelines/; train_eval (the five stages) is the default."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline found under ``pipelines/``; ``__default__`` is ``train_eval``."""
    pipelines = find_pipelines(raise_errors=True)
    if "train_eval" in pipelines:
        pipelines["__default__"] = pipelines["train_eval"]
    return pipelines
