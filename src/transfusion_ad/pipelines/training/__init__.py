"""Train TransFusion on the category's normal images with anomalies synthesised on the fly."""

from transfusion_ad.pipelines.training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
