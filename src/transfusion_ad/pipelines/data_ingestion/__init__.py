"""Index the category, hold out normal images for thresholds, decode images at model size."""

from transfusion_ad.pipelines.data_ingestion.pipeline import create_pipeline

__all__ = ["create_pipeline"]
