"""calibrate: a new thresholds version for a category's model from a folder of good images."""

from transfusion_ad.pipelines.calibrate.pipeline import create_pipeline

__all__ = ["create_pipeline"]
