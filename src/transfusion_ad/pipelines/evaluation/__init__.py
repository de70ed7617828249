"""Mask fusion, image scores, thresholds, metrics, figures and the per-category report."""

from transfusion_ad.pipelines.evaluation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
