"""TransFusion AD: transparency-based diffusion for surface anomaly detection, as a Kedro project."""

__version__ = "0.1.0"
