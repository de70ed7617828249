"""train_eval: the five stages chained, one category per run; the project's default pipeline."""

from transfusion_ad.pipelines.train_eval.pipeline import create_pipeline

__all__ = ["create_pipeline"]
