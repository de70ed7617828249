"""Foreground masks, the anomaly-source texture bank and a preview of synthetic anomalies."""

from transfusion_ad.pipelines.anomaly_synthesis.pipeline import create_pipeline

__all__ = ["create_pipeline"]
