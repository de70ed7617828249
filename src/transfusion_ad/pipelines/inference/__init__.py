"""The reverse process on every test (and held-out normal) image."""

from transfusion_ad.pipelines.inference.pipeline import create_pipeline

__all__ = ["create_pipeline"]
